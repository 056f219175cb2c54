# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""The brief's questions, one module each: section 2 (the supervised CNN, ``sup_classification``)
and section 3.4's Q1 to Q4 (``q1_vae``, ``q2_sampling``, ``q3_latent_opt``, ``q4_loglik``).

These are the files a student hands in; ``sup_classification`` is the course's skeleton filled in
and imports nothing from this package.
"""

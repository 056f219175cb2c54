"""Experiment modules, one per question of the brief: Exercise 1, "PyTorch & Variational Inference", of
course 67912 (Advanced Course in Machine Learning). "Brief, section 3.4" or "Eq. 5" in a docstring are
that exercise's section and equation numbers (Q1 to Q4 are its section 3.4).

Each module has a header docstring (question, method, command), a frozen ``Config`` dataclass,
a ``SMOKE`` configuration with tiny sizes, and one ``run(cfg, ctx) -> Result`` that computes and
returns; the pipeline (``pipeline/``) writes everything. Experiment code imports only torch,
torchvision, numpy, matplotlib and the standard library, as the brief allows.

AI-written code (brief, section 4.1.1): every module of this package was written by an AI coding
assistant (Claude, by Anthropic); the report's section "Use of AI tools" says how.
"""

"""The machinery around the experiments: ordering, caching, registry, figures, rendering, verifying.

Unlike ``experiments/``, this package may use the CLI and report libraries (click, jinja2,
weasyprint, ziamath); the experiments never import it.

AI-written code (brief, section 4.1.1): every module of this package was written by an AI coding
assistant (Claude, by Anthropic); the report's section "Use of AI tools" says how.
"""

SECTIONS = ("sup", "q1", "q2", "q3", "q3x_sparse", "q3x_rowadam", "q3x_long", "q4", "q4conv",  # the report's order;
            "extra_beta", "extra_range", "extra",  # each has experiments/<module>.py
            "tor_vae", "tor_posterior", "tor_grad", "dtu_vae", "dtu_gauss", "ein_vae",  # then the companion's
            "stan_vae")  # (report/companion.pdf), course by course: Toronto, DTU, Eindhoven, Stanford

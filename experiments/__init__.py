"""Experiment modules, one per question of the brief (``../shared/brief/exercise.md``).

Each module has a header docstring (question, method, command), a frozen ``Config`` dataclass,
a ``SMOKE`` configuration with tiny sizes, and one ``run(cfg, ctx) -> Result`` that computes and
returns; the pipeline (``pipeline/``) writes everything. Experiment code imports only torch,
torchvision, numpy, matplotlib and the standard library, as the brief allows.
"""

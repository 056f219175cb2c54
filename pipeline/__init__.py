"""The machinery around the experiments: ordering, caching, registry, figures, rendering, verifying.

Unlike ``experiments/``, this package may use the CLI and report libraries (click, jinja2,
weasyprint, ziamath); the experiments never import it.

AI-written code (brief, section 4.1.1): every module of this package was written by an AI coding
assistant (Claude, by Anthropic); the report's section "Use of AI tools" says how.
"""
import importlib
from pathlib import Path
from types import ModuleType

# section name -> its module, in the report's order, then the companion's (report/companion.pdf), course by
# course: Toronto, DTU, Eindhoven, Stanford; adding a section is one line here plus its module
MODULES = {
    "sup": "experiments.brief.sup_classification",
    "q1": "experiments.brief.q1_vae",
    "q2": "experiments.brief.q2_sampling",
    "q3": "experiments.brief.q3_latent_opt",
    "q3x_sparse": "experiments.findings.q3_sparse_adam",
    "q3x_rowadam": "experiments.findings.q3_row_adam",
    "q3x_long": "experiments.findings.q3_longer",
    "q4": "experiments.brief.q4_loglik",
    "q4conv": "experiments.findings.q4_convergence",
    "extra_beta": "experiments.findings.true_elbo_vae",
    "extra_range": "experiments.findings.unit_range_vae",
    "extra": "experiments.findings.assess",
    "tor_vae": "experiments.courses.toronto.vae",
    "tor_posterior": "experiments.courses.toronto.posterior",
    "tor_grad": "experiments.courses.toronto.gradients",
    "dtu_vae": "experiments.courses.dtu.priors",
    "dtu_gauss": "experiments.courses.dtu.gaussian_decoder",
    "dtu_conv": "experiments.courses.dtu.conv_vae",
    "ein_vae": "experiments.courses.eindhoven.mixture_vae",
    "stan_vae": "experiments.courses.stanford.vae",
    "stan_gd": "experiments.courses.stanford.gradient_descent",
    "stan_nn": "experiments.courses.stanford.classifier",
}
# The submission zip (pipeline/submission.py) leaves the companion's folder experiments/courses/ out: in that
# tree the courses' sections do not exist, and neither does the companion (pipeline/document.py: DOCUMENTS).
if not (Path(__file__).resolve().parent.parent / "experiments" / "courses").is_dir():
    MODULES = {name: module for name, module in MODULES.items() if not module.startswith("experiments.courses.")}
SECTIONS = tuple(MODULES)


def section_module(name: str) -> ModuleType:
    return importlib.import_module(MODULES[name])

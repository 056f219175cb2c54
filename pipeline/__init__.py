"""The machinery around the experiments: ordering, caching, registry, figures, rendering, verifying.

Unlike ``experiments/``, this package may use the CLI and report libraries (click, jinja2,
weasyprint, ziamath); the experiments never import it.

AI-written code (brief, section 4.1.1): every module of this package was written by an AI coding
assistant (Claude, by Anthropic); the report's section "Use of AI tools" says how.
"""
import importlib
from types import ModuleType

# section name -> its module, in the report's order, then the companion's (report/companion.pdf), course by
# course: Toronto, DTU, Eindhoven, Stanford; adding a section is one line here plus its module
MODULES = {
    "sup": "experiments.sup_classification",
    "q1": "experiments.q1_vae",
    "q2": "experiments.q2_sampling",
    "q3": "experiments.q3_latent_opt",
    "q3x_sparse": "experiments.q3x_sparse",
    "q3x_rowadam": "experiments.q3x_rowadam",
    "q3x_long": "experiments.q3x_long",
    "q4": "experiments.q4_loglik",
    "q4conv": "experiments.q4_convergence",
    "extra_beta": "experiments.extra_beta",
    "extra_range": "experiments.extra_range",
    "extra": "experiments.extra",
    "tor_vae": "experiments.tor_vae",
    "tor_posterior": "experiments.tor_posterior",
    "tor_grad": "experiments.tor_grad",
    "dtu_vae": "experiments.dtu_vae",
    "dtu_gauss": "experiments.dtu_gauss",
    "ein_vae": "experiments.ein_vae",
    "stan_vae": "experiments.stan_vae",
}
SECTIONS = tuple(MODULES)


def section_module(name: str) -> ModuleType:
    return importlib.import_module(MODULES[name])

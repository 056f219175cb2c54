"""Test helper (not a test): run reproduce.py's command line in a child process on the tiny data.

TEST_MNIST_MD5 holds the tiny files' MD5 sums as JSON. With TEST_BLOCK_SECTION=q1 (or several,
comma-separated), that section's ``run`` announces "[test] q1 computed in <pid>" on stderr when it has
its result and then sleeps (120 s, or until the file TEST_RELEASE names exists), so that a test can
deliver a signal at a known point: after the computation, before anything is written.
Worker processes (``--jobs`` > 1) start by importing this file as ``__mp_main__``, so they are
patched the same way; only the main process runs the command line, as the program itself runs it.
"""
import importlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from experiments.lib import data  # noqa: E402
from pipeline.runner import MODULES  # noqa: E402

data.RAW_MD5 = json.loads(os.environ["TEST_MNIST_MD5"])


def blocked(section: str):
    module = importlib.import_module(MODULES[section])
    compute = module.run
    release = os.environ.get("TEST_RELEASE")

    def run(cfg, ctx):
        result = compute(cfg, ctx)
        print(f"[test] {section} computed in {os.getpid()}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (release and Path(release).exists()):
            time.sleep(0.05)
        return result

    module.run = run


for name in filter(None, os.environ.get("TEST_BLOCK_SECTION", "").split(",")):
    blocked(name)

if __name__ == "__main__":
    import reproduce

    reproduce.PROGRAM = True
    reproduce.cli()

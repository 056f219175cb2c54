"""Test helper (not a test): run reproduce.py's command line in a child process on the tiny data.

TEST_MNIST_MD5 holds the tiny files' MD5 sums as JSON. With TEST_BLOCK_SECTION=q1, that section's
``run`` announces "[test] q1 computed in <pid>" on stderr when it has its result and then sleeps, so
that a test can deliver a signal at a known point: after the computation, before anything is written.
Worker processes (``--jobs`` > 1) start by importing this file as ``__mp_main__``, so they are
patched the same way; only the main process runs the command line.
"""
import importlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.lib import data  # noqa: E402
from pipeline.runner import MODULES  # noqa: E402

data.RAW_MD5 = json.loads(os.environ["TEST_MNIST_MD5"])
blocked = os.environ.get("TEST_BLOCK_SECTION")
if blocked:
    module = importlib.import_module(MODULES[blocked])
    compute = module.run

    def run(cfg, ctx):
        result = compute(cfg, ctx)
        print(f"[test] {blocked} computed in {os.getpid()}", file=sys.stderr, flush=True)
        time.sleep(120)
        return result

    module.run = run

if __name__ == "__main__":
    import reproduce

    reproduce.cli()

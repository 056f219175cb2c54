"""Shared fixtures: tiny MNIST-format files written by the tests, and the real data when present."""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import reproduce  # noqa: E402
from experiments.lib import data as mnist  # noqa: E402

TINY_TRAIN_PER_CLASS = 110  # 1,100 training-file images: the smoke split takes 500 + 500
TINY_TEST = 600


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format of MNIST: magic (0, 0, type 0x08, ndim), big-endian sizes, then uint8 data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def synthetic_digits(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28x28 images with a stroke whose angle depends on the label, jittered: learnable, MNIST-like ink."""
    yy, xx = np.mgrid[0:28, 0:28] - 13.5
    images = np.zeros((len(labels), 28, 28))
    for i, label in enumerate(labels):
        angle = math.pi * label / 10 + rng.normal(0, 0.05)
        dist = np.abs(-math.sin(angle) * xx + math.cos(angle) * yy) + rng.normal(0, 0.3)
        images[i] = np.clip(1.6 - dist, 0, 1) * (np.hypot(xx, yy) < 10 + label % 3)
    return (255 * images).round()


def write_mnist(root: Path, seed: int = 0) -> dict[str, str]:
    """Write the four raw files under root/MNIST/raw; return their MD5 sums."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train_y = rng.permutation(np.repeat(np.arange(10), TINY_TRAIN_PER_CLASS))
    test_y = rng.integers(0, 10, TINY_TEST)
    files = {
        "train-images-idx3-ubyte": synthetic_digits(train_y, rng), "train-labels-idx1-ubyte": train_y,
        "t10k-images-idx3-ubyte": synthetic_digits(test_y, rng), "t10k-labels-idx1-ubyte": test_y,
    }
    sums = {}
    for name, array in files.items():
        payload = idx_bytes(np.asarray(array))
        (raw / name).write_bytes(payload)
        sums[name] = hashlib.md5(payload).hexdigest()
    return sums


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("tiny-mnist")
    return root, write_mnist(root)


@pytest.fixture
def tiny_data(tiny_root, monkeypatch) -> Path:
    """The tiny files, with the MD5 check pointed at their sums."""
    root, sums = tiny_root
    monkeypatch.setattr(mnist, "RAW_MD5", dict(sums))
    return root


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real MNIST raw files: $MNIST_DATA_DIR, else ../shared/data; skipped when absent."""
    root = Path(os.environ.get(mnist.DATA_ENV, ROOT.parent / "shared" / "data"))
    if not all((root / "MNIST" / "raw" / name).is_file() for name in mnist.RAW_MD5):
        pytest.skip(f"real MNIST not found under {root}")
    return root


def smoke(data_root, out, *args):
    """reproduce.py --smoke ... into ``out`` with checkpoints in out/../<name>-ckpt."""
    ckpt = out.parent / f"{out.name}-ckpt"
    return CliRunner().invoke(reproduce.cli, ["--smoke", "--data-dir", str(data_root), "--out", str(out),
                                              "--checkpoints", str(ckpt), *args])


@pytest.fixture(scope="session")
def first_run(tiny_root, tmp_path_factory):
    """One full smoke run on the tiny data, shared by the tests that only read or copy it."""
    root, sums = tiny_root
    out = tmp_path_factory.mktemp("smoke") / "report"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mnist, "RAW_MD5", dict(sums))
        result = smoke(root, out, "--all")
    assert result.exit_code == 0, result.output
    return out, result


@pytest.fixture
def copied(first_run, tmp_path):
    """A private copy of the first run's output (computed with one thread) and checkpoints."""
    out, _ = first_run
    shutil.copytree(out, tmp_path / "report")
    shutil.copytree(out.parent / "report-ckpt", tmp_path / "report-ckpt")
    return tmp_path / "report"

# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""MNIST from its four raw IDX files: integrity check, loading, and the seeded splits.

Splits (the brief's section 2.3 and 3.3):
  train: 20,000 images of the official training set, exactly 2,000 of each digit;
  val:   10,000 further images of the official training set, disjoint from ``train``;
  test:  the official 10,000-image test set.
Images stay in memory as uint8 tensors; training loops index them, no per-image transform.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from experiments.brief.sup_classification import N_VAL, PER_CLASS, SMOKE_SIZES, draw_splits

# Canonical MD5 sums of the uncompressed raw files, as published with MNIST.
RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
DATA_ENV = "MNIST_DATA_DIR"
MAX_RAW_BYTES = 64 << 20  # the largest raw file (training images) has 47,040,016 bytes


class DataError(RuntimeError):
    """The data set is missing, unreadable or altered; the message is one line and says what to do."""


def read_raw(root: Path) -> dict[str, bytes]:
    """The four raw files under ``root/MNIST/raw``, each read once and checked against ``RAW_MD5``: the bytes
    checked are the bytes parsed, so nothing else under ``root`` (such as the ``processed/`` files old
    torchvision versions wrote) can stand in for them."""
    raw = Path(root) / "MNIST" / "raw"
    payloads = {}
    for name, want in RAW_MD5.items():
        path = raw / name
        not_a_file(path)
        if not path.is_file():
            raise DataError(f"{path} is missing; put the MNIST raw files there or pass --data-dir / set {DATA_ENV}")
        with open(path, "rb") as f:
            payload = f.read(MAX_RAW_BYTES + 1)
        got = hashlib.md5(payload).hexdigest()
        if got != want:
            size = f"over {MAX_RAW_BYTES} bytes" if len(payload) > MAX_RAW_BYTES else f"MD5 {got}"
            raise DataError(f"{path} has {size}, expected MD5 {want}: the file is truncated or altered; "
                            "delete it and rerun to download it again")
        payloads[name] = payload
    return payloads


def verify_raw(root: Path) -> dict[str, str]:
    """Check the four raw files under ``root/MNIST/raw`` against ``RAW_MD5``; return the sums."""
    read_raw(root)
    return dict(RAW_MD5)


def parse_idx(payload: bytes, name: str) -> torch.Tensor:
    """An IDX file's uint8 array (LeCun's format): two zero bytes, the type byte 0x08 (unsigned byte), the
    number of dimensions n, then n big-endian uint32 sizes, then the values in row-major order."""
    n = payload[3] if len(payload) >= 4 else 0
    header = 4 + 4 * n
    if len(payload) < header or payload[:3] != b"\x00\x00\x08" or n not in (1, 3):
        raise DataError(f"{name} is not an IDX file of unsigned bytes; delete it and rerun to download it again")
    shape = struct.unpack(f">{n}I", payload[4:header])
    if len(payload) - header != math.prod(shape):
        raise DataError(f"{name} holds {len(payload) - header} values, its header says {math.prod(shape)}; "
                        "delete it and rerun to download it again")
    return torch.frombuffer(bytearray(payload), dtype=torch.uint8, offset=header).view(*shape)


def not_a_file(path: Path) -> None:
    """DataError when something other than a file (a folder) sits where a raw file belongs."""
    if path.exists() and not path.is_file():
        raise DataError(f"{path} is a {'folder' if path.is_dir() else 'special file'}, not the raw MNIST file; "
                        "move it away and put the file there (or pass --data-dir / set " + DATA_ENV + ")")


def fetch(root: Path) -> None:
    """Download the raw files with torchvision when they are absent (the only network access)."""
    from torchvision.datasets import MNIST

    raw = Path(root) / "MNIST" / "raw"
    for name in RAW_MD5:
        not_a_file(raw / name)
    if all((raw / name).is_file() for name in RAW_MD5):
        return
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        # torchvision prints each failed mirror; the error below says it in one line instead
        with contextlib.redirect_stdout(io.StringIO()):
            MNIST(root=str(root), train=True, download=True)
    except Exception as err:  # torchvision raises RuntimeError, URLError, OSError...
        raise DataError(f"MNIST is not in {raw} and could not be downloaded ({type(err).__name__}); "
                        f"copy the four raw files there or pass --data-dir / set {DATA_ENV}") from None


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # (N, 28, 28) uint8
    y: torch.Tensor  # (N,) int64 digit labels
    index: torch.Tensor  # (N,) int64 positions in the official file, for the registry

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class SplitSpec:
    """Sizes of the three splits; the brief's are the defaults, ``--smoke`` uses tiny ones."""

    per_class: int = PER_CLASS  # training images of each digit (brief, section 2.3: 2,000 x 10)
    n_val: int = N_VAL  # validation images, drawn from the rest of the official training set
    n_test: int | None = None  # test images from the official test set; None keeps all 10,000
    n_full: int | None = None  # images of the whole training file (the companion's courses); None keeps all 60,000


SMOKE_SPLIT = SplitSpec(*SMOKE_SIZES, n_full=1000)  # per digit, validation, test: sup_classification.py's --smoke


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    test: Split
    md5: dict  # raw file name -> MD5, recorded as provenance
    spec: SplitSpec = SplitSpec()
    full_train: Split | None = None  # the whole official training file (or its first spec.n_full images)


def make_splits(train_x, train_y, test_x, test_y, seed: int, spec: SplitSpec = SplitSpec()) -> tuple[Split, Split, Split]:
    """Draw a class-balanced training subset, a disjoint validation set and the test set, fixed by ``seed``
    (drawn by the course's skeleton, ``sup_classification.draw_splits``, which every section reuses)."""
    try:
        chosen, val_idx, test_idx = draw_splits(train_y, len(test_y), seed, spec.per_class, spec.n_val, spec.n_test)
    except ValueError as err:
        raise DataError(str(err)) from None

    def split(x, y, idx):
        return Split(x[idx].contiguous(), y[idx].long(), idx)

    return split(train_x, train_y, chosen), split(train_x, train_y, val_idx), split(test_x, test_y, test_idx)


def load_splits(root: Path, seed: int, spec: SplitSpec = SplitSpec(), download: bool = True) -> Splits:
    """Fetch if needed, read the raw files (checked against their MD5s) and split."""
    if download:
        fetch(root)
    payloads = read_raw(root)
    train_x, train_y, test_x, test_y = (parse_idx(payloads[name], name) for name in (
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
    # labels as int64, images as uint8 (N, 28, 28): what torchvision's MNIST gives for the same files
    train_y, test_y = train_y.long(), test_y.long()
    for x, y, name in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if x.dim() != 3 or x.shape[1:] != (28, 28) or y.dim() != 1 or len(x) != len(y):
            raise DataError(f"the {name} images {tuple(x.shape)} and labels {tuple(y.shape)} do not match; "
                            "delete the raw files and rerun to download them again")
    train, val, test = make_splits(train_x, train_y, test_x, test_y, seed=seed, spec=spec)
    full = torch.arange(len(train_y) if spec.n_full is None else min(spec.n_full, len(train_y)))
    return Splits(train, val, test, dict(RAW_MD5), spec, Split(train_x[full].contiguous(), train_y[full], full))


def to_float(x: torch.Tensor, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) scaled linearly from [0, 255] to [low, high]."""
    return (x.float().unsqueeze(1) / 255.0) * (high - low) + low


def binarize(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """uint8 images -> floats in {0, 1} of the same shape: 1 where pixel / 255 > threshold (the companion's
    courses binarize at 0.5, deterministically)."""
    return (x.float() / 255.0 > threshold).float()


def batches(n: int, batch_size: int, generator: torch.Generator | None = None):
    """Index tensors covering range(n): shuffled by ``generator`` when given, in order otherwise."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return order.split(batch_size)


def pick_per_digit(labels: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """(10, k) positions into ``labels``: k distinct random images of each digit 0..9, row = digit."""
    rows = []
    for digit in range(10):
        pool = (labels == digit).nonzero().squeeze(1)
        if len(pool) < k:
            raise DataError(f"the split has {len(pool)} images of digit {digit}, {k} needed")
        rows.append(pool[torch.randperm(len(pool), generator=generator)[:k]])
    return torch.stack(rows)


@dataclass(frozen=True)
class Q1Picks:
    """The images Q1 shows and evaluates, as positions into the splits; Q3 uses the same ones."""

    shown: dict[str, torch.Tensor]  # "val", "train" -> (10,): one image of each digit, position = digit
    subsets: dict[str, torch.Tensor]  # "train", "val" -> (10, k): k images of each digit, row = digit


def q1_picks(splits: Splits, seed: int, per_digit: int) -> Q1Picks:
    """Q1's shown images and class-balanced evaluation subsets, fixed by ``seed`` alone (stream 0).

    Drawn in this order from one generator: shown validation, shown training, training subset,
    validation subset; so the shown images do not depend on ``per_digit``.
    """
    g = torch.Generator().manual_seed(seed)
    shown = {name: pick_per_digit(getattr(splits, name).y, 1, g)[:, 0] for name in ("val", "train")}
    subsets = {name: pick_per_digit(getattr(splits, name).y, per_digit, g) for name in ("train", "val")}
    return Q1Picks(shown, subsets)

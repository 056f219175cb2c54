"""MNIST integrity checks and the seeded splits."""
from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from experiments.lib import data as mnist


def copy_tree(src, dst):
    shutil.copytree(src / "MNIST", dst / "MNIST")
    return dst


def test_missing_file_is_named_in_one_line(tiny_data, tmp_path):
    """A missing raw file gives a one-line DataError that names it and says what to do."""
    root = copy_tree(tiny_data, tmp_path)
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(mnist.DataError) as err:
        mnist.verify_raw(root)
    message = str(err.value)
    assert "t10k-labels-idx1-ubyte" in message and "missing" in message and "\n" not in message


@pytest.mark.parametrize("damage", ["truncate", "alter"])
def test_damaged_file_is_caught_by_its_md5(tiny_data, tmp_path, damage):
    """A truncated or altered raw file fails its MD5 check with a one-line message naming it."""
    root = copy_tree(tiny_data, tmp_path)
    path = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    payload = path.read_bytes()
    path.write_bytes(payload[:-100] if damage == "truncate" else payload[:-1] + bytes([payload[-1] ^ 1]))
    with pytest.raises(mnist.DataError, match="train-images-idx3-ubyte has MD5") as err:
        mnist.load_splits(root, seed=0, spec=mnist.SMOKE_SPLIT, download=False)
    assert "\n" not in str(err.value)


def test_splits_are_balanced_disjoint_and_sized(tiny_data):
    """Training has per_class images of each digit, validation is disjoint from it, sizes as asked."""
    s = mnist.load_splits(tiny_data, seed=3, spec=mnist.SMOKE_SPLIT, download=False)
    assert torch.equal(torch.bincount(s.train.y, minlength=10), torch.full((10,), 50))
    assert len(s.val) == 500 and len(s.test) == 500
    assert not set(s.train.index.tolist()) & set(s.val.index.tolist())
    assert s.train.x.dtype == torch.uint8 and s.train.x.shape[1:] == (28, 28)


def test_splits_are_fixed_by_the_seed(tiny_data):
    """The same seed gives the same splits; another seed gives other ones."""
    a, b, c = (mnist.load_splits(tiny_data, seed=k, spec=mnist.SMOKE_SPLIT, download=False) for k in (1, 1, 2))
    assert torch.equal(a.train.index, b.train.index) and torch.equal(a.val.index, b.val.index)
    assert not torch.equal(a.train.index, c.train.index)


def test_pick_per_digit_returns_distinct_images_of_each_digit(tiny_data):
    """pick_per_digit gives, for each digit, k distinct positions holding that digit."""
    s = mnist.load_splits(tiny_data, seed=0, spec=mnist.SMOKE_SPLIT, download=False)
    idx = mnist.pick_per_digit(s.train.y, 5, torch.Generator().manual_seed(0))
    assert idx.shape == (10, 5)
    for digit in range(10):
        assert torch.all(s.train.y[idx[digit]] == digit) and len(set(idx[digit].tolist())) == 5


def test_real_files_pass_their_canonical_md5(real_data):
    """The real raw files match the canonical MD5 sums of ../shared/data/README.md."""
    assert mnist.verify_raw(real_data) == mnist.RAW_MD5


def test_real_splits_follow_the_brief(real_data):
    """On real MNIST: 20,000 training images, 2,000 per digit; 10,000 disjoint validation; the 10,000 test images."""
    s = mnist.load_splits(real_data, seed=0, download=False)
    assert torch.equal(torch.bincount(s.train.y, minlength=10), torch.full((10,), 2000))
    assert len(s.val) == 10_000 and len(s.test) == 10_000
    assert not set(s.train.index.tolist()) & set(s.val.index.tolist())


def test_full_training_file_is_exposed_in_file_order(tiny_data):
    """Splits.full_train holds the first n_full images of the training file, in file order."""
    spec = dataclasses.replace(mnist.SMOKE_SPLIT, n_full=300)
    splits = mnist.load_splits(tiny_data, 0, spec, download=False)
    assert splits.full_train.index.tolist() == list(range(300))
    inside = splits.train.index < 300  # training-subset images that also lie in the first 300
    assert torch.equal(splits.full_train.x[splits.train.index[inside]], splits.train.x[inside])
    assert torch.equal(splits.full_train.y[splits.train.index[inside]], splits.train.y[inside])


def test_q1_picks_are_fixed_by_the_seed_and_shown_images_do_not_depend_on_the_subset_size(tiny_data):
    """q1_picks: same seed, same picks; the shown images are the same whatever the subset size."""
    s = mnist.load_splits(tiny_data, seed=0, spec=mnist.SMOKE_SPLIT, download=False)
    a, b, c = mnist.q1_picks(s, 4, 6), mnist.q1_picks(s, 4, 6), mnist.q1_picks(s, 4, 3)
    assert all(torch.equal(a.subsets[k], b.subsets[k]) for k in ("train", "val")) and a.subsets["val"].shape == (10, 6)
    assert all(torch.equal(a.shown[k], c.shown[k]) for k in ("train", "val"))
    assert torch.equal(s.val.y[a.shown["val"]], torch.arange(10))


def test_binarize_thresholds_at_half_and_keeps_the_shape():
    """binarize maps pixel values above 127.5 to 1 and the rest to 0, shape unchanged."""
    x = torch.tensor([[[0, 127, 128, 255]]], dtype=torch.uint8)
    assert torch.equal(mnist.binarize(x), torch.tensor([[[0.0, 0.0, 1.0, 1.0]]]))


def test_processed_files_beside_the_raw_ones_are_never_read(tiny_data, tmp_path):
    """With old torchvision's processed/training.pt and test.pt present (inverted, labels shifted), the splits
    hold the raw files' images and labels, whose MD5s were checked."""
    root = copy_tree(tiny_data, tmp_path)
    raw = root / "MNIST" / "raw"
    # the files' values after their 16-byte (images) or 8-byte (labels) headers
    arrays = [torch.tensor(bytearray((raw / name).read_bytes()[16 if "images" in name else 8:]), dtype=torch.uint8)
              for name in mnist.RAW_MD5]
    arrays = [a.view(-1, 28, 28) if i % 2 == 0 else a for i, a in enumerate(arrays)]
    (root / "MNIST" / "processed").mkdir()
    for file, (x, y) in (("training.pt", arrays[:2]), ("test.pt", arrays[2:])):
        torch.save((255 - x, (y.long() + 1) % 10), root / "MNIST" / "processed" / file)
    s = mnist.load_splits(root, seed=0, spec=mnist.SMOKE_SPLIT, download=False)
    assert torch.equal(s.train.x, arrays[0][s.train.index]) and torch.equal(s.train.y, arrays[1][s.train.index].long())
    assert torch.equal(s.test.x, arrays[2][s.test.index]) and torch.equal(s.test.y, arrays[3][s.test.index].long())


def test_real_files_load_byte_for_byte_as_torchvision_reads_them(real_data):
    """The raw files parsed here give the tensors torchvision's MNIST gives: same bytes, dtypes and shapes."""
    from torchvision.datasets import MNIST

    s = mnist.load_splits(real_data, seed=0, spec=mnist.SplitSpec(n_full=None), download=False)
    official = MNIST(root=str(real_data), train=True, download=False)
    test = MNIST(root=str(real_data), train=False, download=False)
    assert s.full_train.x.dtype == official.data.dtype and torch.equal(s.full_train.x, official.data)
    assert s.full_train.y.dtype == official.targets.dtype and torch.equal(s.full_train.y, official.targets)
    assert torch.equal(s.test.x, test.data) and torch.equal(s.test.y, test.targets)


@pytest.mark.parametrize("payload", [b"", b"\x00\x00\x0d\x01\x00\x00\x00\x01abcd", b"\x00\x00\x08\x01\x00\x00\x00\x05ab"])
def test_a_file_that_is_not_idx_of_its_stated_size_is_one_line(payload):
    """A payload with a foreign type byte, no header, or fewer values than its header says is a one-line DataError."""
    with pytest.raises(mnist.DataError) as err:
        mnist.parse_idx(payload, "train-labels-idx1-ubyte")
    assert "\n" not in str(err.value) and "train-labels-idx1-ubyte" in str(err.value)

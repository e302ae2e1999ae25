"""Splits: val carved from train by class, exactly sized and seeded; stored as uint8, scaled or binarised on load;
mini-batches drawn by index in one seeded order per data seed, resumable from its state."""

from __future__ import annotations

import gzip
import zipfile

import numpy as np
import pytest
import torch

from src.data.idx import IdxError
from src.data.splits import (
    SPLITS,
    class_counts,
    load_split,
    make_splits,
    read_split_arrays,
    stratified_split,
    write_splits,
)
from src.errors import StudyError

# MNIST's training label counts (../shared/mnist/README.md)
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="module")
def mnist_like_labels() -> np.ndarray:
    """60,000 labels with MNIST's class counts, shuffled."""
    labels = np.repeat(np.arange(10, dtype=np.uint8), MNIST_TRAIN_COUNTS)
    return np.random.default_rng(7).permutation(labels)


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def raw_dir(tmp_path):
    """A data/raw with tiny MNIST-shaped files: 100 training and 30 test images, each image filled with its index."""
    directory = tmp_path / "raw"
    directory.mkdir()
    for part, count in (("train", 100), ("t10k", 30)):
        write_idx(directory / f"{part}-images-idx3-ubyte.gz", np.repeat(np.arange(count), 28 * 28).reshape(-1, 28, 28))
        write_idx(directory / f"{part}-labels-idx1-ubyte.gz", np.arange(count) % 10)
    return directory


def test_the_split_has_exactly_the_requested_sizes(mnist_like_labels):
    train, val = stratified_split(mnist_like_labels, 10_000, seed=0)
    assert (len(train), len(val)) == (50_000, 10_000)


@pytest.mark.parametrize("val_size", [10_000, 777, 10])
def test_each_class_keeps_its_share_within_one_example(mnist_like_labels, val_size):
    _, val = stratified_split(mnist_like_labels, val_size, seed=0)

    exact = np.array(MNIST_TRAIN_COUNTS) * val_size / len(mnist_like_labels)
    drawn = np.bincount(mnist_like_labels[val], minlength=10)
    assert drawn.sum() == val_size
    assert np.all(np.abs(drawn - exact) < 1)


def test_train_and_val_are_disjoint_and_together_the_whole_training_set(mnist_like_labels):
    train, val = stratified_split(mnist_like_labels, 10_000, seed=0)

    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(60_000))


def test_the_same_seed_gives_the_same_split_and_another_seed_another(mnist_like_labels):
    first = stratified_split(mnist_like_labels, 10_000, seed=0)
    again = stratified_split(mnist_like_labels, 10_000, seed=0)
    other = stratified_split(mnist_like_labels, 10_000, seed=1)

    np.testing.assert_array_equal(first[1], again[1])
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize("val_size", [0, 60_000])
def test_a_val_size_leaving_an_empty_split_is_refused(mnist_like_labels, val_size):
    with pytest.raises(ValueError, match=f"val_size must be between 1 and 59999, got {val_size}"):
        stratified_split(mnist_like_labels, val_size, seed=0)


def test_make_splits_carves_val_from_train_and_keeps_test_whole(raw_dir):
    splits = make_splits(raw_dir, val_size=20, seed=0)

    assert {name: len(labels) for name, (_, labels) in splits.items()} == {"train": 80, "val": 20, "test": 30}
    for images, labels in splits.values():
        assert images.dtype == np.uint8 and images.shape == (len(labels), 784) and labels.dtype == np.uint8
        # every image still carries its own label: image i is filled with i, and its label is i % 10
        np.testing.assert_array_equal(images[:, 0] % 10, labels)
    train_ids, val_ids = splits["train"][0][:, 0], splits["val"][0][:, 0]
    np.testing.assert_array_equal(np.sort(np.concatenate([train_ids, val_ids])), np.arange(100))
    np.testing.assert_array_equal(splits["test"][0][:, 0], np.arange(30))


def test_labels_that_do_not_match_the_images_are_refused(raw_dir):
    write_idx(raw_dir / "t10k-labels-idx1-ubyte.gz", np.zeros(29))
    with pytest.raises(IdxError, match=r"t10k-labels-idx1-ubyte\.gz: shape \(29,\), expected \(30,\)"):
        make_splits(raw_dir, val_size=20, seed=0)


def test_a_label_outside_the_ten_digits_is_refused(raw_dir):
    write_idx(raw_dir / "train-labels-idx1-ubyte.gz", np.full(100, 10))
    with pytest.raises(IdxError, match=r"train-labels-idx1-ubyte\.gz: holds label 10, expected digits 0-9"):
        make_splits(raw_dir, val_size=20, seed=0)


def test_splits_are_stored_uncompressed_and_read_back_unchanged(raw_dir, tmp_path):
    splits = make_splits(raw_dir, val_size=20, seed=0)
    processed = tmp_path / "processed"

    write_splits(processed, splits)

    assert sorted(path.name for path in processed.iterdir()) == [f"{name}.npz" for name in sorted(SPLITS)]
    for name, (images, labels) in splits.items():
        with zipfile.ZipFile(processed / f"{name}.npz") as archive:
            assert {entry.compress_type for entry in archive.infolist()} == {zipfile.ZIP_STORED}
        stored_images, stored_labels = read_split_arrays(processed, name)
        np.testing.assert_array_equal(stored_images, images)
        np.testing.assert_array_equal(stored_labels, labels)


def test_rewriting_the_splits_replaces_the_directory_whole(raw_dir, tmp_path):
    processed = tmp_path / "processed"
    processed.mkdir()
    (processed / "stale.npz").write_bytes(b"from an older run")

    write_splits(processed, make_splits(raw_dir, val_size=20, seed=0))

    assert not (processed / "stale.npz").exists()


def test_the_summary_counts_each_class_per_split(raw_dir):
    summary = class_counts(make_splits(raw_dir, val_size=20, seed=0))

    assert summary["test"] == {"count": 30, "per_class": [3] * 10}
    assert summary["val"] == {"count": 20, "per_class": [2] * 10}  # stratified: 10% of every class
    assert summary["train"] == {"count": 80, "per_class": [8] * 10}


def test_a_missing_split_says_which_stage_makes_it(tmp_path):
    with pytest.raises(StudyError, match=r"val\.npz: no such file \(run `dvc repro preprocess` first\)"):
        read_split_arrays(tmp_path, "val")


def test_an_unknown_split_name_is_refused(tmp_path):
    with pytest.raises(StudyError, match=r"unknown split 'validation', expected one of train, val, test"):
        read_split_arrays(tmp_path, "validation")


def test_a_split_of_the_wrong_dtype_is_refused(tmp_path):
    np.savez(tmp_path / "train.npz", images=np.zeros((3, 784), dtype=np.float32), labels=np.zeros(3, dtype=np.uint8))
    with pytest.raises(StudyError, match=r"train\.npz: images are float32 \(3, 784\), expected uint8 \(N, 784\)"):
        read_split_arrays(tmp_path, "train")


def test_a_split_without_labels_is_refused(tmp_path):
    np.savez(tmp_path / "test.npz", images=np.zeros((3, 784), dtype=np.uint8))
    with pytest.raises(StudyError, match=r"test\.npz: not a split archive with arrays 'images' and 'labels'"):
        read_split_arrays(tmp_path, "test")


@pytest.fixture
def grey_levels(tmp_path):
    """A stored split of one image holding the grey levels 0, 127, 128 and 255 (and zeros elsewhere)."""
    images = np.zeros((1, 784), dtype=np.uint8)
    images[0, :4] = [0, 127, 128, 255]
    np.savez(tmp_path / "test.npz", images=images, labels=np.array([7], dtype=np.uint8))
    return tmp_path


def test_binarized_loading_maps_pixels_of_128_and_up_to_one(grey_levels):
    split = load_split(grey_levels, "test", torch.device("cpu"), binarize=True)

    assert split.images.dtype == torch.float32 and split.images.shape == (1, 784)
    assert split.images[0, :4].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert set(split.images.unique().tolist()) == {0.0, 1.0}
    assert split.labels.dtype == torch.int64 and split.labels.tolist() == [7]


def test_grey_loading_scales_pixels_to_the_unit_interval(grey_levels):
    split = load_split(grey_levels, "test", torch.device("cpu"), binarize=False)

    torch.testing.assert_close(split.images[0, :4], torch.tensor([0, 127, 128, 255]) / 255)

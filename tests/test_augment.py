"""European variants and batch augmentation on tiny synthetic digits (no MNIST needed)."""

from __future__ import annotations

import cv2
import numpy as np

from digit_app.reading.normalize import center_of_mass
from training.augment import augment_batch, european_variant_sets, european_variants, joined_variants
from training.config import TrainConfig


def _one() -> np.ndarray:
    """An upright American 1: a bare vertical stroke."""
    img = np.zeros((28, 28), np.uint8)
    cv2.line(img, (14, 4), (14, 23), 255, 2)
    return img


def _seven() -> np.ndarray:
    """An uncrossed 7: a bar and a slanted stem."""
    img = np.zeros((28, 28), np.uint8)
    cv2.line(img, (8, 5), (20, 5), 255, 2)
    cv2.line(img, (20, 5), (12, 23), 255, 2)
    return img


def _zero() -> np.ndarray:
    img = np.zeros((28, 28), np.uint8)
    cv2.ellipse(img, (14, 14), (6, 9), 0, 0, 360, 255, 2)
    return img


def _batch(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([_one(), _seven(), _zero()] * n)
    labels = np.array([1, 7, 0] * n)
    return images, labels


def test_only_ones_and_sevens_change_and_only_gain_ink() -> None:
    images, labels = _batch()
    out = european_variants(images, labels, seed=3)
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[labels == 0], images[labels == 0])
    assert np.all(out >= images)  # strokes are added, never erased
    assert np.all((out != images).reshape(len(images), -1).any(axis=1)[labels != 0])


def test_flag_leaves_the_top_to_the_left_and_the_bar_crosses_the_stem() -> None:
    images, labels = _batch(10)
    out = european_variants(images, labels, seed=0)
    added = (out.astype(int) - images.astype(int)) > 64
    for img_added, label in zip(added, labels):
        ys, xs = np.nonzero(img_added)
        if label == 1:
            assert xs.min() < 13 and ys.min() <= 6  # a flag from the top, down to the left
        elif label == 7:
            assert xs.min() < 16 < xs.max() and 8 <= ys.mean() <= 18  # a bar across the middle


def test_joined_variants_add_a_stroke_to_the_configured_share_and_stay_mnist_shaped() -> None:
    images, labels = _batch(100)
    out = joined_variants(images, labels, prob=0.3, seed=4)
    assert out.shape == images.shape and out.dtype == np.uint8
    changed = (out != images).reshape(len(images), -1).any(axis=1)
    assert 0.2 < changed.mean() < 0.4
    for img in out[changed]:
        ys, xs = np.nonzero(img > 0)
        assert max(np.ptp(ys), np.ptp(xs)) + 1 <= 21  # normalised again into the 20 px box
        cy, cx = center_of_mass(img.astype(np.float32))
        assert abs(cx - 14) < 0.75 and abs(cy - 14) < 0.75


def test_joining_strokes_leave_to_the_sides_and_sevens_get_no_foot() -> None:
    zeros = np.stack([_zero()] * 60)
    out = joined_variants(zeros, np.zeros(60, int), prob=1.0, seed=1)
    # The 0 was 13 px wide and 19 high; with a stroke out of either side it gets wider than tall.
    widths = np.array([np.ptp(np.nonzero(img > 64)[1]) + 1 for img in out])
    heights = np.array([np.ptp(np.nonzero(img > 64)[0]) + 1 for img in out])
    assert (widths > heights).mean() > 0.5
    sevens = np.stack([_seven()] * 60)
    joined = joined_variants(sevens, np.full(60, 7), prob=1.0, seed=1)
    assert (joined != sevens).any()
    for img in joined:  # incoming strokes only: the right end of the bar stays the rightmost ink
        ys, xs = np.nonzero(img > 64)
        lower = ys > (ys.min() + ys.max()) / 2
        assert xs.max() - xs[lower].max() >= 3


def _flag_widths(long_flag_deg: float) -> np.ndarray:
    images = np.stack([_one()] * 300)
    out = european_variants(images, np.ones(300, int), seed=5, long_flag_deg=long_flag_deg)
    added = (out.astype(int) - images.astype(int)) > 64
    return np.array([14 - np.nonzero(a)[1].min() for a in added])


def test_long_flag_deg_allows_longer_flags_at_shallower_angles() -> None:
    # Same seed, so the same angles: only the longest allowed length changes.
    shallow, steep = _flag_widths(35.0), _flag_widths(65.0)
    assert np.all(shallow >= steep - 1)
    assert shallow.mean() > steep.mean() + 0.5


def test_full_augmentation_keeps_every_digit_on_the_image() -> None:
    import keras

    keras.utils.set_random_seed(0)
    images, labels = _batch(30)
    out = augment_batch(images, TrainConfig()).numpy()
    assert out.shape == (len(images), 28, 28, 1) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    ink = out.reshape(len(images), -1)
    assert (ink.max(axis=1) > 0.3).all() and (ink.sum(axis=1) > 5).all()


def test_variant_sets_hold_different_flags_and_bars() -> None:
    images, labels = _batch(20)
    sets = european_variant_sets(images, labels, seed=1, copies=3)
    assert sets.shape == (len(images), 3, 28, 28) and sets.dtype == np.uint8
    np.testing.assert_array_equal(sets[:, 0], european_variants(images, labels, seed=1))
    ones_and_sevens = labels != 0
    assert (sets[ones_and_sevens, 0] != sets[ones_and_sevens, 1]).reshape(-1, 784).any(axis=1).all()

"""The synthetic digit strings that choose the segmentation's settings are what they claim."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.mnist_strings import _mark, make_string
from benchmarks.strings import score_strings


def _digits(n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Stand-ins for MNIST digits: a filled bar whose width encodes the label."""
    images = np.zeros((n, 28, 28), np.uint8)
    labels = np.arange(n) % 10
    for i, label in enumerate(labels):
        images[i, 4:24, 10 : 12 + int(label)] = 255
    return images, labels


def test_strings_are_reproducible_and_labelled():
    images, labels = _digits()
    a = make_string(images, labels, np.random.default_rng(3), 0.35, 0.25, 0.5)
    b = make_string(images, labels, np.random.default_rng(3), 0.35, 0.25, 0.5)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    for seed in range(20):
        gray, truth = make_string(images, labels, np.random.default_rng(seed), 0.35, 0.25, 0.5)
        assert gray.dtype == np.uint8 and 1 <= len(truth) <= 7 and truth.isdigit()
        assert gray.min() < 120 < np.median(gray)  # dark ink on light paper


def test_touching_digits_overlap_and_apart_digits_do_not():
    images, labels = _digits()
    apart = [make_string(images, labels, np.random.default_rng(s), 0.0, 0.0) for s in range(10)]
    joined = [make_string(images, labels, np.random.default_rng(s), 1.0, 0.0) for s in range(10)]

    # Bars that never touch leave paper between them: as many ink runs across a row as digits.
    def runs(gray: np.ndarray) -> int:
        row = gray[gray.shape[0] // 2] < 120
        return int(np.count_nonzero(row[1:] & ~row[:-1]))

    assert all(runs(g) == len(t) for g, t in apart)
    assert sum(runs(g) < len(t) for g, t in joined if len(t) > 1) > 0


@pytest.mark.parametrize("kind", [".", ",", "-", "="])
def test_marks_are_smaller_than_digits(kind):
    ink, top = _mark(kind, 64.0)
    assert ink.max() > 200 and ink.shape[0] < 0.5 * 64 and top < 0


def test_score_counts_exact_strings_with_a_perfect_and_a_blind_reader(mnist_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    from digit_app.predictor import served_predictor

    good = score_strings(served_predictor(), 12, 0, 0.0, 0.0)
    assert good.n == 12 and good.exact >= 10 and good.digits_right <= good.digits

    class Blind:
        unsure_threshold = 0.5
        card = {"config": {"seed": 42}}  # the split strings are drawn from

        def predict_probabilities(self, images: np.ndarray) -> np.ndarray:
            return np.full((len(images), 10), 0.1, np.float32)

    blind = score_strings(Blind(), 12, 0, 0.0, 0.0)
    assert blind.exact == 0 and blind.row()["exact"] == 0.0


def test_training_report_names_the_flags_a_version_was_trained_with():
    from benchmarks.training import _config_words
    from training.config import TrainConfig

    config = TrainConfig(out="/tmp/somewhere").to_dict()
    assert _config_words(config) == "default config"  # paths are not flags of the recipe
    config.update(seed=2, variant_prob=0.3)
    words = _config_words(config)
    assert "`--seed 2`" in words and "`--variant-prob 0.3`" in words
    # A card from before a field existed: the code then behaved like the old value.
    old = TrainConfig().to_dict()
    del old["long_flag_deg"]
    assert _config_words(old) == "default config but `--long-flag-deg 55.0`"


def test_strings_use_the_split_the_model_held_out(mnist_dir, monkeypatch):
    # A version trained with another seed learned from most of the default split's images.
    from benchmarks.mnist_strings import validation_digits

    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    seed42, _ = validation_digits({"config": {"seed": 42, "val_fraction": 0.1}})
    seed2, _ = validation_digits({"config": {"seed": 2, "val_fraction": 0.1}})
    assert abs(len(seed42) - 6000) <= 5 and len(seed2) == len(seed42)
    # Seed 2's held-out images are mostly seed 42's training images (about 90%).
    in_42 = {img.tobytes() for img in seed42}
    shared = sum(img.tobytes() in in_42 for img in seed2) / len(seed2)
    assert shared < 0.2
    assert np.array_equal(validation_digits({})[0], seed42)  # no config: the defaults
    assert abs(len(validation_digits({"config": {"val_fraction": 0.2}})[0]) - 12000) <= 5
    assert len(validation_digits({"config": {"seed": 2, "limit": 500}})[0]) == 100


def test_a_rerun_rewrites_only_its_own_section(tmp_path):
    from benchmarks.report import write_section

    path = tmp_path / "BENCHMARKS.md"
    write_section("speed", "Recognition speed", "| p50 | 1.0 ms |", path)
    write_section("tflite", "TensorFlow Lite export", "| float | 99.65% |", path)
    path.write_text(path.read_text() + "\n- 2026-12-03: a dated note below the tables.\n")
    write_section("speed", "Recognition speed", "| p50 | 2.0 ms |", path)
    text = path.read_text()
    assert "| p50 | 2.0 ms |" in text and "| p50 | 1.0 ms |" not in text
    assert "| float | 99.65% |" in text and text.endswith("- 2026-12-03: a dated note below the tables.\n")
    assert text.index("begin:speed") < text.index("begin:tflite")  # rewritten in place
    assert "by `python -m benchmarks.speed`" in text and "by `python -m benchmarks.tflite`" in text

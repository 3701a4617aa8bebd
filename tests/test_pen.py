"""The pen model's input (`digit_app.pen`), its blend with the digit model (`Predictor.blend_pen`)
and its trainer (`training.pen`): a real SavedModel and Lite twin, real pen data."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from digit_app.config import PROJECT_ROOT, get_settings
from digit_app.model_store import (
    CARD_NAME,
    EXTRA_DIR,
    TFLITE_FLOAT,
    latest_version,
    read_card,
    tflite_dir,
    version_dir,
)
from digit_app.pen import PEN_FEATURES, PEN_POINTS, blend, encode, strokes_in_boxes
from digit_app.predictor import Predictor
from digit_app.recognize import recognize
from digit_app.strokes import render_strokes
from training.pen import WEIGHTS, choose_weight

# A 4 written in two strokes (canvas pixels, y down) and a 7 in one.
FOUR = [np.array([[60.0, 40], [40, 120], [110, 120]]), np.array([[95.0, 60], [95, 200]])]
SEVEN = [np.array([[150.0, 50], [230, 50], [180, 200]])]


def test_a_drawing_becomes_a_fixed_length_sequence_with_stroke_starts() -> None:
    x = encode(FOUR)
    assert x.shape == (PEN_POINTS, PEN_FEATURES) and x.dtype == np.float32
    assert x[:, 4].sum() == 2 and x[0, 4] == 1  # two strokes, the first starts at point 0
    assert np.abs(x[:, :2]).max() == pytest.approx(1.0)  # the larger side spans -1..1


def test_where_and_how_big_a_drawing_is_does_not_change_its_encoding() -> None:
    moved = [s * 2.5 + np.array([13.0, -7.0]) for s in FOUR]
    assert np.allclose(encode(FOUR), encode(moved), atol=1e-5)


def test_the_pen_direction_is_kept() -> None:
    """A stroke drawn the other way round is another drawing (how a 4's bar was drawn matters)."""
    backwards = [FOUR[0][::-1], FOUR[1]]
    assert not np.allclose(encode(FOUR), encode(backwards))


@pytest.mark.parametrize(
    "strokes", [[], [np.zeros((0, 2))], [np.array([[np.nan, 1.0]])], [np.array([[1.0, 2.0]])] * 40]
)
def test_nothing_to_read_gives_none(strokes: list) -> None:
    assert encode(strokes) is None


def test_each_stroke_goes_to_the_digit_box_that_holds_it() -> None:
    boxes = [(40, 40, 70, 160), (150, 50, 80, 150)]
    four, seven = strokes_in_boxes(FOUR + SEVEN, boxes)
    assert len(four) == 2 and len(seven) == 1
    assert np.array_equal(seven[0], SEVEN[0])


def test_a_stroke_across_two_digits_leaves_the_pen_model_out() -> None:
    """Segmentation cut a stroke in two: the pen model would read another drawing than the image model."""
    joined = [np.array([[40.0, 50], [110, 120], [230, 50]])]
    assert strokes_in_boxes(joined, [(40, 40, 70, 100), (150, 40, 80, 100)]) is None


def test_the_blend_weight_is_chosen_by_the_validation_log_loss() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 400)
    image = np.full((400, 10), 0.02)
    image[np.arange(400), labels] = 0.82
    right = image.copy()
    image[:80] = np.roll(image[:80], 1, axis=1)  # the image model is wrong on a fifth
    sure = np.full((400, 10), 0.01)
    sure[np.arange(400), labels] = 0.91
    noise = np.full((400, 10), 0.01)
    noise[np.arange(400), rng.integers(0, 10, 400)] = 0.91  # sure of a random digit
    assert choose_weight(image, sure, labels)[0] >= 0.5  # a pen model that is always right counts
    assert choose_weight(right, noise, labels)[0] == 0.0  # a guessing one does not
    p = blend(image, noise, 0.3)
    assert np.allclose(p.sum(axis=1), 1.0) and set(WEIGHTS) >= {0.0}


@pytest.fixture(scope="module")
def served() -> Predictor:
    return Predictor.load(get_settings().model_dir)


def test_the_committed_store_has_a_pen_model_with_its_twin(served: Predictor) -> None:
    assert served.has_pen and 0.0 < served.pen_weight < 1.0
    assert served._pen_lite is not None  # the twin answers as the SavedModel does
    assert served.pen_card["pairs_with"] == {"model": "mnist_cnn", "version": served.version}
    for name in ("pendigits", "unipen"):  # the blend was chosen on writers neither model learned from
        held = served.card["data"]["handwriting"][name]["val_writers"]
        assert served.pen_card["data"][name]["val_writers"] == held


def test_the_pen_model_reads_drawings_on_its_own(served: Predictor) -> None:
    p = served.pen_probabilities(np.stack([encode(FOUR), encode(SEVEN)]))
    assert p.shape == (2, 10) and np.allclose(p.sum(axis=1), 1.0, atol=1e-4)
    assert list(p.argmax(axis=1)) == [4, 7]


def test_only_rows_with_strokes_are_blended(served: Predictor) -> None:
    image = np.full((3, 10), 0.1)
    out = served.blend_pen(image, [FOUR, None, []])
    assert np.array_equal(out[1:], image[1:])
    assert out[0].argmax() == 4 and out[0].sum() == pytest.approx(1.0)


def test_the_draw_page_path_blends_the_pen_in(served: Predictor) -> None:
    """The segmentation reader's digits get the pen model's reading of their strokes (the string
    reader, which may answer a number first, is left out: it reads pixels only)."""
    served = replace(served, string_reader=None)
    gray = render_strokes(FOUR + SEVEN, (280, 280))
    alone = recognize(gray, served, single=False)
    both = recognize(gray, served, single=False, strokes=FOUR + SEVEN)
    assert both.digits == "47"
    image = np.array([d.probabilities for d in alone.detail])
    want = served.blend_pen(image, [FOUR, SEVEN])
    assert np.allclose([d.probabilities for d in both.detail], want, atol=1e-6)


def test_without_a_pen_model_drawings_are_read_from_pixels(served: Predictor) -> None:
    bare = Predictor.load(get_settings().model_dir, pen=False)
    assert not bare.has_pen
    gray = render_strokes(FOUR, (280, 280))
    assert (
        recognize(gray, bare, strokes=FOUR).detail[0].probabilities
        == recognize(gray, bare).detail[0].probabilities
    )


def _store_with(tmp_path: Path, pen_card_edit: dict | None = None) -> Path:
    """A store holding the served digit version (linked) and a copy of the committed pen model."""
    settings = get_settings()
    store = tmp_path / "store"
    store.mkdir()
    version = latest_version(settings.model_dir)
    (store / "mnist_cnn").mkdir()
    (store / "mnist_cnn" / str(version)).symlink_to(version_dir(settings.model_dir, version))
    pen = PROJECT_ROOT / "model_store" / "pen_digit"
    pen_version = max(int(p.name) for p in pen.iterdir() if p.name.isdigit())
    shutil.copytree(pen / str(pen_version), store / "pen_digit" / "1")
    if pen_card_edit is not None:
        card = store / "pen_digit" / "1" / EXTRA_DIR / CARD_NAME
        card.write_text(json.dumps({**json.loads(card.read_text()), **pen_card_edit}))
    return store / "mnist_cnn"


@pytest.mark.parametrize("edit", [{"blend_weight": 1.5}, {"blend_weight": "much"}])
def test_a_pen_model_with_a_bad_card_is_left_out(tmp_path: Path, edit: dict) -> None:
    predictor = Predictor.load(_store_with(tmp_path, edit))
    assert not predictor.has_pen and predictor.pen_version is None


def test_a_pen_model_of_weight_zero_changes_nothing(tmp_path: Path) -> None:
    predictor = Predictor.load(_store_with(tmp_path, {"blend_weight": 0.0}))
    assert not predictor.has_pen
    image = np.full((1, 10), 0.1)
    assert np.array_equal(predictor.blend_pen(image, [FOUR]), image)


@pytest.mark.slow
def test_training_publishes_a_pen_model_that_pairs_with_the_digit_model(tmp_path: Path) -> None:
    """A smoke run on the real pen sets' train splits: contract, twin, card, writer split."""
    import tensorflow as tf

    from tests.handwriting import handwriting_dir
    from training.pen import main

    out = tmp_path / "pen_digit"
    assert (
        main(
            [
                "--limit",
                "300",
                "--epochs",
                "1",
                "--handwriting-dir",
                str(handwriting_dir()),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    card = read_card(out, 1)
    served = latest_version(get_settings().model_dir)
    digit = read_card(get_settings().model_dir, served)
    assert card["pairs_with"]["version"] == served
    assert card["blend_weight"] in [float(w) for w in WEIGHTS]
    for name in ("pendigits", "unipen"):
        data = card["data"][name]
        assert (
            data["val_writers"] == digit["data"]["handwriting"][name]["val_writers"]
        )  # same writers held out
        assert data["train_samples"] > 0 and all(len(h) == 64 for h in data["files"].values())
    fn = tf.saved_model.load(str(version_dir(out, 1))).signatures["serving_default"]
    spec = fn.structured_input_signature[1]["strokes"]
    assert tuple(spec.shape) == (None, PEN_POINTS, PEN_FEATURES)
    p = fn(strokes=tf.constant(encode(FOUR)[None]))["probabilities"].numpy()
    assert p.shape == (1, 10) and p.sum() == pytest.approx(1.0, abs=1e-4)
    assert (tflite_dir(out, 1) / TFLITE_FLOAT).is_file()

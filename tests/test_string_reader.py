"""The string reader: the shipped `digit_string` version's signature contract, its Lite twin,
its card, reading real handwriting joined into numbers, and a smoke run of its training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from digit_app.config import PROJECT_ROOT, STRING_MODEL
from digit_app.model_store import latest_version, read_card, version_dir
from digit_app.string_input import HEIGHT, STRIDE, VIEWS, digit_boxes, prepare, views
from digit_app.string_reader import INPUT_NAME, OUTPUT_NAME, StringReader, probe_row
from digit_app.strokes import render_strokes

STORE = PROJECT_ROOT / "model_store" / STRING_MODEL


@pytest.fixture(scope="module")
def reader() -> StringReader:
    return StringReader.load(STORE)


@pytest.fixture(scope="module")
def signature():
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version_dir(STORE, latest_version(STORE))))
    return loaded, loaded.signatures["serving_default"]


def test_signature_contract(signature):
    """What TensorFlow Serving clients rely on: one float input `image` [batch, 32, width, 1],
    one output `frame_probabilities` [batch, width / 4, 11] (class 10 = blank), any batch and width."""
    import tensorflow as tf

    _, fn = signature
    (args, kwargs) = fn.structured_input_signature
    assert not args and list(kwargs) == [INPUT_NAME]
    spec = kwargs[INPUT_NAME]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, HEIGHT, None, 1]
    assert list(fn.structured_outputs) == [OUTPUT_NAME]
    assert fn.structured_outputs[OUTPUT_NAME].shape.as_list() == [None, None, 11]
    for batch, width in ((1, 16), (3, 120), (2, 512)):
        x = np.random.default_rng(width).random((batch, HEIGHT, width, 1), np.float32)
        out = fn(**{INPUT_NAME: tf.constant(x)})[OUTPUT_NAME].numpy()
        assert out.shape == (batch, width // STRIDE, 11) and out.dtype == np.float32
        assert np.allclose(out.sum(axis=-1), 1.0, atol=1e-4) and (out >= 0).all()


def test_the_card_documents_the_signature_and_names_every_source():
    card = read_card(STORE, latest_version(STORE))
    assert card["model_name"] == "digit_string" and card["git_commit"]
    assert set(card["signature"]["inputs"]) == {INPUT_NAME} and set(card["signature"]["outputs"]) == {
        OUTPUT_NAME
    }
    data = card["data"]
    for name in ("pendigits", "unipen", "scans", "optdigits", "mfeat", "mnist"):
        assert data[name]["train_digits"] > 0 and data[name]["files"], name
        assert all(len(h) == 64 for h in data[name]["files"].values())
    assert data["numbers"]["train"]["strings"] > 1000
    assert not set(data["pendigits"]["val_writers"]) & {
        f"pendigits/{w}" for w in range(25, 31)
    }  # dev writers
    assert (
        card["validation"]["exact"] > 50
        and card["config"]["strings"]
        == data["numbers"]["train"]["strings"] + data["numbers"]["train"]["no_ink"]
    )


def test_the_lite_twin_reads_as_the_savedmodel_does(reader):
    assert reader.runtime == "TensorFlow Lite"
    rng = np.random.default_rng(0)
    rows = [probe_row(), rng.random((HEIGHT, 64), np.float32), np.zeros((HEIGHT, 200), np.float32)]
    for row in rows:
        lite = reader.frame_probabilities([row])[0]
        saved = reader._saved_model(row[None, :, :, None])[0]
        assert lite.shape == saved.shape and np.abs(lite - saved).max() < 1e-4


def _number(digits: str, writer: str = "pendigits/3") -> np.ndarray:
    """A number drawn on a canvas from one train writer's pen trajectories, digits side by side."""
    from tests.handwriting import pendigits

    samples = {s["label"]: s for s in reversed(pendigits()) if f"pendigits/{s['writer']}" == writer}
    strokes, x = [], 20.0
    for c in digits:
        pts = [np.array(st, np.float64) * [1, -1] for st in samples[int(c)]["strokes"]]
        every = np.concatenate(pts)
        lo, hi = every.min(axis=0), every.max(axis=0)
        scale = 60.0 / max(hi[1] - lo[1], 1.0)
        strokes += [(p - lo) * scale + [x, 30] for p in pts]
        x += (hi[0] - lo[0]) * scale + 12
    return render_strokes(strokes, (120, int(x) + 20))


@pytest.mark.parametrize("digits", ["4096", "1234567", "70", "5"])
def test_reads_a_drawn_number_with_a_box_per_digit(reader, digits):
    gray = _number(digits)
    reading = reader.read(gray)
    assert reading.result.digits == digits
    boxes = [d.box for d in reading.result.detail]
    assert len(boxes) == len(digits) and [b[0] for b in boxes] == sorted(b[0] for b in boxes)
    for (x, y, w, h), d in zip(boxes, reading.result.detail):
        assert x >= 0 and x + w <= gray.shape[1] and y >= 0 and y + h <= gray.shape[0]
        assert (
            d.image28.shape == (28, 28)
            and abs(sum(d.probabilities) - d.probabilities[d.label] - (1 - d.confidence)) < 1.0
        )
    assert reading.log_probability_of(digits) == pytest.approx(reading.log_probability)
    assert reading.log_probability_of(digits + "1") < reading.log_probability


def test_nothing_to_read():
    assert prepare(np.zeros((50, 80), np.uint8)) is None
    assert digit_boxes(prepare(_number("7")), []) == [
        (
            prepare(_number("7")).box[0],
            prepare(_number("7")).box[1],
            prepare(_number("7")).box[2],
            prepare(_number("7")).box[3],
        )
    ]


@pytest.mark.slow
def test_training_smoke_run_publishes_a_version_with_its_twin(tmp_path: Path, mnist_dir: Path):
    from tests.handwriting import handwriting_dir
    from training.strings.__main__ import main

    out = tmp_path / "digit_string"
    args = [
        "--limit",
        "200",
        "--strings",
        "300",
        "--val-strings",
        "60",
        "--epochs",
        "1",
        "--width",
        "8",
        "--rnn-units",
        "16",
    ]
    assert (
        main(
            args
            + ["--out", str(out), "--handwriting-dir", str(handwriting_dir()), "--data-dir", str(mnist_dir)]
        )
        == 0
    )
    assert latest_version(out) == 1
    card = json.loads((out / "1" / "assets.extra" / "card.json").read_text())
    assert card["config"]["limit"] == 200 and card["history"]["loss"]
    assert (tmp_path / "digit_string-tflite" / "1" / "model_float.tflite").is_file()
    reader = StringReader.load(out)
    assert reader.runtime == "TensorFlow Lite" and reader.read(_number("31")).row is not None


def test_the_app_reads_a_number_with_both_readers(reader):
    """`recognize` in multi mode (the Draw and Upload pages, the CLI) asks a predictor that has a
    string reader for its reading too; single mode and a predictor without one do not."""
    from dataclasses import replace

    from digit_app.predictor import served_predictor
    from digit_app.recognize import recognize

    served = served_predictor()
    assert served.string_reader is not None and served.string_reader.version == reader.version
    gray = _number("4096")
    assert recognize(gray, served, single=False).digits == "4096"
    calls = []

    class Spy:
        def read(self, image):
            calls.append(image.shape)
            return reader.read(image)

        def read_prepared(self, row):
            calls.append(row.ink.shape)
            return reader.read_prepared(row)

    spied = replace(served, string_reader=Spy())
    recognize(gray, spied, single=False)
    recognize(gray, spied, single=True)
    recognize(gray, replace(served, string_reader=None), single=False)
    assert calls == [gray.shape]


def test_the_draw_page_reads_joined_cursive_numbers():
    """Numbers written without lifting the pen (train writers' strokes joined by ligatures), as
    the Draw page redraws them: the app reads most of them whole, where segmentation alone
    cuts most of them wrong (on 2026-12-04: 11 and 3 of these 20)."""
    from dataclasses import replace

    from digit_app.predictor import served_predictor
    from digit_app.recognize import recognize
    from digit_app.strokes import render_strokes
    from tests.handwriting import cursive_number

    served = served_predictor()
    alone = replace(served, string_reader=None)
    app = segmentation = 0
    for writer in (1, 3, 7, 12, 20):
        for digits in ("2026", "4817", "3095", "1000"):
            strokes = [np.array(s, np.float64) for s in cursive_number(digits, writer)]
            gray = render_strokes(strokes, (280, 280))
            app += recognize(gray, served, single=False, strokes=strokes).digits == digits
            segmentation += recognize(gray, alone, single=False, strokes=strokes).digits == digits
    assert app >= 9 and app >= segmentation + 5, (app, segmentation)


def test_a_second_opinion_on_stored_digits(reader, mnist_dir: Path):
    """Stored 28x28 digits (MNIST test, which no model learned from): the string reader gives
    their true labels a high probability and other labels almost none, which is what lets it
    tell an honest correction from a wrong one (`digit_app.suspicion`)."""
    from training.data import load_mnist

    mnist = load_mnist(mnist_dir, progress=False)
    x, y = mnist.x_test[:200].astype(np.float32) / 255.0, mnist.y_test[:200].astype(np.int64)
    right = reader.label_probabilities(x, y)
    wrong = reader.label_probabilities(x, (y + 3) % 10)
    assert right.shape == (200,) and np.median(right) > 0.9 and (right > 0.5).mean() > 0.95
    assert np.median(wrong) < 0.01 and (wrong < 0.5).mean() > 0.98
    assert reader.label_probabilities(np.zeros((2, 28, 28), np.float32), np.array([1, 7])).tolist() == [0, 0]


def test_other_views_keep_the_ink_in_the_field():
    """The slanted views the reader also reads: model rows (HEIGHT rows, a multiple of STRIDE
    wide, blank margins), holding about as much ink as the row."""
    row = prepare(_number("4096")).row
    assert len(views(row)) == len(VIEWS)
    for view in views(row):
        assert view.shape[0] == HEIGHT and view.shape[1] % STRIDE == 0 and view.dtype == np.float32
        assert not view[:, :2].any() and not view[:, -2:].any()
        assert view.sum() == pytest.approx(row.sum(), rel=0.15)


def test_a_string_likelier_under_every_view_wins(reader, monkeypatch):
    """The reading is the candidate with the best log P averaged over the row and its views;
    the views are read only when the row's own reading is not sure."""
    from digit_app import string_reader

    assert reader.read(_number("1234567")).views == []  # sure from the row alone
    monkeypatch.setattr(string_reader, "SURE_ALONE", 1.01)
    reading = reader.read(_number("1234567"))
    assert len(reading.views) == len(VIEWS)
    best = reading.log_probability_of(reading.result.digits)
    assert reading.log_probability == pytest.approx(best)
    assert best >= reading.log_probability_of("1234557") and best >= reading.log_probability_of("123456")

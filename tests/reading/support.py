"""Digits drawn with OpenCV for the reading path's tests (no data files needed), and a stand-in
for the model."""

from __future__ import annotations

import cv2
import numpy as np

from digit_app.reading.pipeline import preprocess_single
from digit_app.reading.types import SIZE

FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw(
    text: str = "5",
    size: tuple[int, int] = (200, 200),
    org: tuple[int, int] = (40, 160),
    scale: float = 5.0,
    thickness: int = 14,
    ink: int = 0,
    paper: int = 255,
) -> np.ndarray:
    """Dark ink on light paper by default, anti-aliased like a scan."""
    img = np.full(size, paper, np.uint8)
    cv2.putText(img, text, org, FONT, scale, ink, thickness, cv2.LINE_AA)
    return img


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two 28x28 images (1 = identical up to brightness)."""
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def final(img: np.ndarray) -> np.ndarray:
    """The 28x28 model input of an image holding one digit (the test fails when none is found)."""
    st = preprocess_single(img)
    assert st is not None, "a digit should be found"
    return st.final


def canvas(
    strokes: list[list[tuple[int, int]]], width: int = 18, size: tuple[int, int] = (280, 280)
) -> np.ndarray:
    """White anti-aliased strokes on a black canvas, as the drawing page gets them."""
    img = np.zeros(size, np.uint8)
    for stroke in strokes:
        pts = np.array(stroke, np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], False, 255, width, cv2.LINE_AA)
        if len(stroke) == 1:
            cv2.circle(img, tuple(stroke[0]), width // 2, 255, -1, cv2.LINE_AA)
    return img


# Canvas strokes (x, y): a 2 in one stroke, and a 4 in two strokes that do not touch.
TWO = [[(80, 90), (120, 50), (180, 60), (190, 110), (90, 230), (200, 230)]]
FOUR = [[(150, 40), (70, 170), (200, 170)], [(175, 90), (172, 245)]]  # two strokes, not touching


CLEAN_CANVASES = {
    "two": canvas(TWO),
    "four in two strokes": canvas(FOUR),
    "thin pen": canvas(TWO, width=3),
    "bold small": canvas([[(120, 110), (160, 110), (130, 170)]], width=24),
    "with a stray click": canvas(TWO + [[(240, 40)]], width=12),
    "small speck": canvas(TWO + [[(240, 240), (241, 241)]], width=2),
    "one bar across": canvas([[(30, 60), (250, 60), (150, 250)]]),
    "seven (putText)": cv2.putText(
        np.zeros((280, 280), np.uint8), "7", (70, 230), FONT, 7.0, 255, 18, cv2.LINE_AA
    ),
    "mnist-sized": cv2.putText(np.zeros((28, 28), np.uint8), "3", (6, 24), FONT, 0.8, 255, 2, cv2.LINE_AA),
}


class FakePredictor:
    """Says "7" with the given confidence for every image; counts its calls."""

    def __init__(self, confidence: float = 0.9) -> None:
        self.unsure_threshold = 0.5
        self.confidence = confidence
        self.calls = 0

    def predict_probabilities(self, images: np.ndarray) -> np.ndarray:
        assert images.shape[1:3] == (SIZE, SIZE)
        self.calls += 1
        p = np.full((len(images), 10), (1 - self.confidence) / 9, np.float32)
        p[:, 7] = self.confidence
        return p


def side_by_side(a: np.ndarray, b: np.ndarray, overlap: float) -> np.ndarray:
    """Two MNIST digits written 60 px tall on grey paper, the second reaching `overlap` of the
    height back into the first's box (so that their strokes touch or interleave)."""

    def glyph(img: np.ndarray) -> np.ndarray:
        ys, xs = np.nonzero(img > 20)
        c = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32)
        return cv2.resize(
            c, (max(2, round(c.shape[1] * 60 / c.shape[0])), 60), interpolation=cv2.INTER_LINEAR
        )

    ga, gb = glyph(a), glyph(b)
    x = ga.shape[1] - int(overlap * 60)
    ink = np.zeros((100, 40 + x + gb.shape[1]), np.float32)
    ink[20:80, 20 : 20 + ga.shape[1]] = ga
    np.maximum(ink[20:80, 20 + x : 20 + x + gb.shape[1]], gb, out=ink[20:80, 20 + x : 20 + x + gb.shape[1]])
    return np.clip(220 - ink / 255 * 180, 0, 255).astype(np.uint8)

"""Pages of MNIST validation digits written as a number: the synthetic strings of
`python -m benchmarks.strings --sets mnist`.

In: MNIST training images that the served version's own run held out (its card's split), a
random generator. Out: a grey page (uint8) with 1-7 of them side by side and the string it
shows.

Each digit is scaled to a common height with some jitter, set on a baseline that wanders a
little, and spaced as people write: apart, or touching and overlapping (a share of the
neighbours); the whole line leans. Separators between two digits (".", ",", "-") and end marks
("-", "=") may be written: they are not digits and must not be read. The page is grey paper
with dark ink and sensor noise.
"""

from __future__ import annotations

import cv2
import numpy as np

HEIGHT = 64  # px, a digit's height on the page


def _ink_crop(img: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(img > 20)
    return img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _mark(kind: str, height: float) -> tuple[np.ndarray, float]:
    """A separator or end mark drawn with a digit's pen: its ink and its top, relative to the baseline."""
    pen = max(2, int(round(0.1 * height)))
    if kind == ".":
        side = 2 * pen
        img = np.zeros((side, side), np.float32)
        cv2.circle(img, (side // 2, side // 2), pen // 2 + 1, 255.0, -1, cv2.LINE_AA)
        return img, -side
    if kind == ",":
        img = np.zeros((int(0.3 * height), 2 * pen + 4), np.float32)
        cv2.line(img, (img.shape[1] - pen, pen), (pen, img.shape[0] - pen), 255.0, pen, cv2.LINE_AA)
        return img, -0.12 * height
    width = int(height * 0.45)
    if kind == "-":
        img = np.zeros((2 * pen, width), np.float32)
        cv2.line(img, (pen // 2, pen), (width - pen // 2, pen), 255.0, pen, cv2.LINE_AA)
        return img, -0.55 * height
    img = np.zeros((int(0.3 * height), width), np.float32)  # "="
    for y in (pen, img.shape[0] - pen):
        cv2.line(img, (pen // 2, y), (width - pen // 2, y), 255.0, pen, cv2.LINE_AA)
    return img, -0.62 * height


def make_string(
    images: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    touching: float,
    slant: float,
    marks: float = 0.0,
) -> tuple[np.ndarray, str]:
    """A grey page with 1-7 MNIST digits written side by side, and the string it shows.

    With probability `marks` a separator (".", ",", "-") is written between two of the digits,
    and, independently, an end mark ("-" or "=") after the last: they are not part of the string.
    """
    n = int(rng.integers(1, 8))
    picks = rng.integers(0, len(images), n)
    height = HEIGHT * rng.uniform(0.85, 1.15)
    items: list[tuple[np.ndarray, float | None]] = []  # ink, top relative to the baseline (None: a digit)
    for i in picks:
        crop = _ink_crop(images[i]).astype(np.float32)
        h = height * rng.uniform(0.9, 1.1)
        w = max(2, int(round(crop.shape[1] * h / crop.shape[0])))
        items.append((cv2.resize(crop, (w, int(round(h))), interpolation=cv2.INTER_LINEAR), None))
    if marks and n > 1 and rng.random() < marks:
        items.insert(int(rng.integers(1, n)), _mark(str(rng.choice([".", ",", "-"])), height))
    if marks and rng.random() < marks:
        items.append(_mark(str(rng.choice(["-", "="])), height))
    margin = int(0.3 * height)
    page_w = sum(g.shape[1] for g, _ in items) + int(0.4 * height * len(items)) + 2 * margin
    page_h = int(1.5 * height) + 2 * margin
    ink = np.zeros((page_h, page_w), np.float32)
    x = margin
    base = margin + int(1.2 * height)
    for k, (g, top) in enumerate(items):
        if k:
            digits = top is None and items[k - 1][1] is None
            if digits and rng.random() < touching:  # joined or overlapping, as in fast writing
                x -= int(rng.uniform(0.0, 0.18) * height)
            else:
                x += int(rng.uniform(0.05, 0.35) * height)
        y = base - g.shape[0] if top is None else base + top
        y = int(np.clip(y + int(rng.normal(0, 0.05) * height), 0, page_h - g.shape[0]))
        x = max(0, x)
        region = ink[y : y + g.shape[0], x : x + g.shape[1]]
        np.maximum(region, g[: region.shape[0], : region.shape[1]], out=region)
        x += g.shape[1]
    ink = ink[:, : min(page_w, x + margin)]
    if slant:  # the whole line leans, as most people's writing does (on top of each digit's own slant)
        s = rng.uniform(-slant, slant)
        pad = int(abs(s) * page_h) + 1
        # x' = x - s * y (+ s * height when s > 0): with s > 0 the top leans right.
        shear = np.float32([[1, -s, max(0.0, s) * page_h], [0, 1, 0]])
        ink = cv2.warpAffine(ink, shear, (ink.shape[1] + pad, page_h), flags=cv2.INTER_LINEAR)
    paper = rng.uniform(170, 235)
    dark = rng.uniform(20, 90)
    gray = paper - ink / 255.0 * (paper - dark) + rng.normal(0, 4, ink.shape)
    return np.clip(gray, 0, 255).astype(np.uint8), "".join(str(int(labels[i])) for i in picks)


def validation_digits(card: dict) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST images the model's own training run held out, as its card records the split.

    Each seed holds out different images, so the default split would be training data for a
    version trained with another seed. A retrained version replays MNIST training images,
    some of them from this split: its figures here are not on unseen digits.
    """
    from benchmarks.handwriting import mnist_dir
    from training.data import held_out_for_card, load_mnist

    m = load_mnist(data_dir=mnist_dir(), progress=False)
    _, val, _ = held_out_for_card(card, m.y_train, len(m.x_test))
    return m.x_train[val], m.y_train[val]

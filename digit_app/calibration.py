"""Temperature scaling of class probabilities, shared by training and the app.

A version's SavedModel serves its network's probabilities raised to 1/T and renormalised
(`training.calibrate` fits T). Segmentation weighs the network's own evidence, so it takes
them back with the inverse temperature: `scale(p, 1 / T)`.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (N, C) raised to 1/T and renormalised (softmax of the logits divided by T)."""
    logits = np.log(np.maximum(np.asarray(probs, np.float64), EPS)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)

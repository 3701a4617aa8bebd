"""Measures the stages share: the stroke width of a mask."""

from __future__ import annotations

import numpy as np

from digit_app.reading.measure import stroke_width


def test_stroke_width_estimate():
    m = np.zeros((100, 100), bool)
    m[10:90, 40:48] = True
    assert 7 <= stroke_width(m) <= 10

"""Cutting a group: the paths between touching or leaning digits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digit_app.reading.cuts import cut_columns, pieces_between, seams
from digit_app.reading.groups import Group


def test_cuts_weave_between_digits_that_lean_into_each_other():
    # Two slanted strokes (a "11" written fast), not touching, each reaching into the other's
    # columns: any vertical line between them cuts one of them.
    strokes = [np.zeros((100, 90), np.uint8), np.zeros((100, 90), np.uint8)]
    cv2.line(strokes[0], (50, 5), (10, 95), 1, 7)
    cv2.line(strokes[1], (80, 5), (40, 95), 1, 7)
    mask = (strokes[0] | strokes[1]).astype(bool)
    assert all((strokes[0][:, x].any() and strokes[1][:, x].any()) for x in range(40, 51))
    group = Group(0, 0, 90, 100, [1], int(mask.sum()))
    pieces = pieces_between(group, mask, seams(mask, [0, 43, 90], 43.0))
    assert len(pieces) == 2
    for piece, stroke in zip(pieces, strokes):
        x, y, w, h = piece.box
        whole = np.zeros_like(mask)
        whole[y : y + h, x : x + w] = piece.mask
        assert np.array_equal(whole, stroke.astype(bool))


@pytest.mark.parametrize("seed", range(30))
def test_cut_paths_split_any_group_into_disjoint_pieces_that_cover_it(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 300)), int(rng.integers(1, 300))
    mask = rng.random((h, w)) < rng.uniform(0.05, 0.9)
    k = int(rng.integers(2, 9))
    prof = mask.sum(axis=0).astype(float)
    bounds = seams(mask, cut_columns(prof, k), w / k)
    for left, right in zip(bounds[:-1], bounds[1:]):
        assert np.all(left <= right) and left.min() >= 0 and right.max() <= w
    covered = np.zeros((h, w), int)
    for p in pieces_between(Group(0, 0, w, h, [1], int(mask.sum())), mask, bounds):
        x, y, pw, ph = p.box
        assert p.mask.shape == (ph, pw) and p.mask.any()
        covered[y : y + ph, x : x + pw] += p.mask
    assert np.array_equal(covered, mask.astype(int))

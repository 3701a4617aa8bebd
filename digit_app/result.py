"""What a reading gives back: the digits, how sure the model is, and each digit's detail.

In: nothing (types only). Out: `DigitResult` and `Result`, which the segmentation reader
(`recognize`), the string reader (`string_reader`) and the decision between them (`decide`)
all return, and the pages, the CLI and the feedback store read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from digit_app.reading.types import Stages


@dataclass
class DigitResult:
    """One recognised digit."""

    box: tuple[int, int, int, int]  # (x, y, w, h) in the input image
    label: int
    confidence: float
    probabilities: tuple[float, ...]
    unsure: bool
    image28: np.ndarray  # the model's input, (28, 28) float32 0..1
    stages: Stages | None = None

    @property
    def shown(self) -> str:
        return "?" if self.unsure else str(self.label)


@dataclass
class Result:
    """The recognised string, how sure the model is of all of it, and each digit's detail."""

    digits: str  # e.g. "2026", "20?6", or "" when no digit was found
    confidence: float  # product of the digits' confidences (the chance all are right); 0 if none
    detail: list[DigitResult] = field(default_factory=list)
    message: str | None = None
    reader: str = "segmentation"  # which reader answered: "segmentation" or "string" (`decide`)

    @property
    def found(self) -> bool:
        return bool(self.detail)

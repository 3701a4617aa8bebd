"""Two readers, one answer: the segmentation reader's and the string reader's readings of a
number, and the rule that picks between them.

In: the segmentation reader's `Result` (with the digit model's probabilities per digit), the
string reader's `StringReading` (with its frame probabilities), and the digit model's
probabilities for the string reader's own digit crops. Out: the `Result` the user sees, the
chosen reader's in full (its boxes, confidences, probabilities and "?"), and which reader it was.

Rules (measured on numbers of held-out train writers, BENCHMARKS.md; `DECISION_RULE` is the one
the app uses):
- "segmentation", "string": one reader always (the baselines);
- "confidence": the reader surer of its whole answer (segmentation: the product of its digits'
  confidences; string: P(its digits) under the CTC model, summed over every alignment);
- "joint": a two-candidate beam scored by both models: each candidate string gets log P under
  the string model plus `weight` x the digit model's log-probability of its digits, read on that
  candidate's own crops. A candidate that only one model likes loses to one both accept.
Whatever the rule, a reader that finds nothing never wins over one that finds digits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digit_app.recognize import Result
from digit_app.string_reader import StringReading

RULES = ("segmentation", "string", "confidence", "joint")
DECISION_RULE = "joint"
JOINT_WEIGHT = 1.0  # the digit model's share in the joint score (chosen on validation numbers)
_FLOOR = 1e-6  # probabilities below this count as this (log 0 would make one model a veto)


@dataclass(frozen=True)
class Decision:
    result: Result
    reader: str  # "segmentation", "string" or "" when neither found a digit
    scores: dict[str, float]  # each candidate reader's score under the rule


def digit_log_probability(probabilities: list[tuple[float, ...]] | np.ndarray, digits: str) -> float:
    """The digit model's log P of `digits`, one per crop, from each crop's ten probabilities;
    -inf when the counts differ (the crops cannot hold that string)."""
    if len(probabilities) != len(digits) or not digits.isdigit():
        return float("-inf")
    p = np.asarray(probabilities, np.float64).reshape(len(digits), 10)
    return float(sum(np.log(max(p[i, int(c)], _FLOOR)) for i, c in enumerate(digits)))


def _labels(result: Result) -> str:
    """The digits a result read, unsure ones included (its top class)."""
    return "".join(str(d.label) for d in result.detail)


def decide(
    segmentation: Result,
    string: StringReading,
    string_crop_probabilities: np.ndarray | None,
    rule: str = DECISION_RULE,
    weight: float = JOINT_WEIGHT,
) -> Decision:
    """The answer to show. `string_crop_probabilities`: the digit model's (n, 10) for the string
    reader's n digit crops (only the joint rule needs them)."""
    if rule not in RULES:
        raise ValueError(f"unknown decision rule {rule!r}: one of {', '.join(RULES)}")
    found = {"segmentation": bool(segmentation.detail), "string": bool(string.result.detail)}
    if not any(found.values()):
        return Decision(segmentation, "", {})
    if not all(found.values()):
        chosen = "segmentation" if found["segmentation"] else "string"
        return Decision(segmentation if found["segmentation"] else string.result, chosen, {})
    seg_digits, str_digits = _labels(segmentation), _labels(string.result)
    if rule in ("segmentation", "string"):
        scores = {rule: 0.0}
    elif rule == "confidence":
        scores = {"segmentation": float(segmentation.confidence), "string": float(string.result.confidence)}
    else:
        seg_probs = [d.probabilities for d in segmentation.detail]
        str_probs = string_crop_probabilities if string_crop_probabilities is not None else np.zeros((0, 10))
        scores = {
            "segmentation": string.log_probability_of(seg_digits)
            + weight * digit_log_probability(seg_probs, seg_digits),
            "string": string.log_probability + weight * digit_log_probability(str_probs, str_digits),
        }
    chosen = max(scores, key=lambda k: (scores[k], k == "string"))
    return Decision(segmentation if chosen == "segmentation" else string.result, chosen, scores)

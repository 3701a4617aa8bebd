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
Whatever the rule, a reader that finds nothing never wins over one that finds digits, and when
neither finds more than one digit the segmentation reader answers: a single digit is the digit
model's (and the pen model's) job, measured and tuned for it (BENCHMARKS.md). Two shortcuts
save time without changing what is read (measured below): ink wider than tall is read by the
string model first, and its answer is shown at once when it is sure of two digits or more
(`is_sure`); one upright digit found by segmentation is not given to the string model at all
(`may_be_a_number`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digit_app.result import Result
from digit_app.string_input import prepare
from digit_app.string_reader import StringReading

RULES = ("segmentation", "string", "confidence", "joint")
DECISION_RULE = "joint"
# The digit model's share in the joint score. Chosen on 600 synthetic numbers (pen, canvas and
# glyph kinds) of the string model's validation writers (train splits) and 1,500 single canvas
# drawings of the same writers, 2026-12-04, string model version 2: weight 0.25 / 0.5 / 1 / 2
# read 80.7 / 80.8 / 78.5 / 71.7% of the numbers whole (segmentation alone 47.8%, the string
# model alone 80.8%); single drawings: 100% (pendigits) and 98.3% (UNIPEN; segmentation alone
# 98.1%) with the single-digit rule, 97.9% without it. Re-checked with the string reader's
# slanted views (`string_input.views`): 82.2 / 81.7 / 79.5 / 71.8%.
JOINT_WEIGHT = 0.25
# How sure the string model must be of two or more digits for its answer to be shown without
# segmentation (`is_sure`). On the same validation numbers, accepting it at P >= 0.7 / 0.8 /
# 0.9 / 0.95 / 0.99 read 80.8 / 81.0 / 80.8 / 80.8 / 80.7% whole (always deciding: 80.5%) and
# skipped segmentation, which takes most of a number's time, on 71 / 66 / 59 / 55 / 40% of them.
SURE = 0.9
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


def may_be_a_number(segmentation: Result) -> bool:
    """Whether the string reader could change the answer: not when segmentation found one digit
    no wider than it is tall, as a single drawing is (two digits side by side are wider than
    tall, and with one digit each the segmentation reader answers anyway). Measured on the
    validation writers above: the string model is skipped on 91% of the single drawings, which
    read as before, and 1 of the 600 numbers is lost (80.7 -> 80.5%)."""
    if len(segmentation.detail) != 1:
        return True
    _, _, w, h = segmentation.detail[0].box
    return w > h


def read_first(gray: np.ndarray, reader: object) -> StringReading | None:
    """The string reader's reading of a picture whose ink is wider than tall (it may hold a
    number), before segmentation; None for upright ink (a single digit, as `may_be_a_number`)
    or no ink."""
    row = prepare(gray)
    if row is None or row.box[2] <= row.box[3]:
        return None
    return reader.read_prepared(row)


def is_sure(string: StringReading | None) -> bool:
    """Whether the string reader's answer can be shown without asking segmentation: two digits
    or more, and P(its digits) >= SURE."""
    return string is not None and len(string.result.detail) >= 2 and np.exp(string.log_probability) >= SURE


def read_both(
    gray: np.ndarray,
    segmentation: Result,
    reader: object,
    predictor: object,
    string: StringReading | None = None,
) -> Decision:
    """Read `gray` with the string reader too (unless `string` is its reading already) and
    decide, given the segmentation reader's `segmentation` of it. `predictor` scores the string
    reader's digit crops (the joint rule)."""
    if not may_be_a_number(segmentation):
        return Decision(segmentation, "segmentation", {})
    string = string if string is not None else reader.read(gray)
    crops = [d.image28 for d in string.result.detail]
    probs = None
    if crops and DECISION_RULE == "joint":
        batch = np.stack(crops).astype(np.float32)[..., None]
        probs = np.asarray(predictor.predict_probabilities(batch), np.float64)
    return decide(segmentation, string, probs)


def decide(
    segmentation: Result,
    string: StringReading,
    string_crop_probabilities: np.ndarray | None,
    rule: str = DECISION_RULE,
    weight: float = JOINT_WEIGHT,
    keep_single: bool = True,
) -> Decision:
    """The answer to show. `string_crop_probabilities`: the digit model's (n, 10) for the string
    reader's n digit crops (only the joint rule needs them). `keep_single=False` lets the rule
    decide single digits too."""
    if rule not in RULES:
        raise ValueError(f"unknown decision rule {rule!r}: one of {', '.join(RULES)}")
    found = {"segmentation": bool(segmentation.detail), "string": bool(string.result.detail)}
    if not any(found.values()):
        return Decision(segmentation, "", {})
    one_digit = len(segmentation.detail) <= 1 and len(string.result.detail) <= 1
    if keep_single and one_digit and found["segmentation"]:
        return Decision(segmentation, "segmentation", {})
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

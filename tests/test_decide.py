"""The decision between the segmentation reader and the string reader, on fixed cases: the
readers agree, disagree, or one of them finds nothing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from digit_app.ctc import BLANK, align, best_path, string_log_probability
from digit_app.decide import RULES, decide, digit_log_probability
from digit_app.recognize import DigitResult, Result
from digit_app.string_reader import StringReading


def _seg(digits: str, confidence: float = 0.95) -> Result:
    """A segmentation result: each digit read with `confidence`, the rest spread evenly."""
    detail = []
    for i, c in enumerate(digits):
        p = np.full(10, (1 - confidence) / 9)
        p[int(c)] = confidence
        detail.append(
            DigitResult(
                (10 * i, 0, 8, 20), int(c), confidence, tuple(p), confidence < 0.5, np.zeros((28, 28))
            )
        )
    return Result(digits, float(confidence ** len(digits)), detail)


def _frames(digits: str, sure: float = 0.9) -> np.ndarray:
    """CTC frames spelling `digits`: blank, digit, blank, ... with `sure` on the intended class."""
    rows = []
    for c in digits:
        rows += [BLANK, int(c)]
    rows.append(BLANK)
    p = np.full((len(rows), BLANK + 1), (1 - sure) / BLANK)
    p[np.arange(len(rows)), rows] = sure
    return p


def _string(digits: str, sure: float = 0.9) -> StringReading:
    frames = (
        _frames(digits, sure) if digits else np.full((4, BLANK + 1), 0.01) + np.eye(BLANK + 1)[BLANK] * 0.89
    )
    decoded = best_path(frames)
    detail = [
        DigitResult(
            (10 * i, 0, 8, 20), d.label, d.confidence, d.probabilities, d.confidence < 0.5, np.zeros((28, 28))
        )
        for i, d in enumerate(decoded)
    ]
    got = "".join(str(d.label) for d in decoded)
    logp = string_log_probability(frames, got)
    return StringReading(Result(got, float(np.exp(logp)), detail), frames, decoded, logp)


def _crops(digits: str, confidence: float = 0.95) -> np.ndarray:
    return np.array([r.probabilities for r in _seg(digits, confidence).detail]).reshape(-1, 10)


def test_the_string_model_decodes_and_scores_its_frames():
    frames = _frames("1005")
    assert "".join(str(d.label) for d in best_path(frames)) == "1005"
    assert string_log_probability(frames, "1005") > string_log_probability(frames, "105")
    assert string_log_probability(frames, "1005") > string_log_probability(frames, "10005")
    assert string_log_probability(frames, "1234567890") == float("-inf")  # more digits than frames hold
    # The forward pass sums every alignment: P(all strings) is at most 1, and the best path's
    # string gets more than the best path alone.
    total = sum(
        np.exp(string_log_probability(frames, s))
        for s in ["1005", "105", "15", "1", "5", "", "10", "100", "005", "0"]
    )
    assert total <= 1.0 + 1e-9
    assert string_log_probability(frames, "1005") >= np.log(frames.max(axis=1)).sum()


def test_aligning_a_string_places_each_digit_on_its_frames():
    """A string chosen over the best path (by the other views) gets frames per digit."""
    frames = _frames("1005")  # blank 1 blank 0 blank 0 blank 5 blank
    own = align(frames, "1005")
    assert [(d.label, d.first, d.last) for d in own] == [
        (d.label, d.first, d.last) for d in best_path(frames)
    ]
    other = align(frames, "1006")  # the last digit forced to 6: still placed on frame 7
    assert [d.label for d in other] == [1, 0, 0, 6] and other[-1].peak == 7
    assert other[-1].confidence == pytest.approx(frames[7, 6])
    assert align(frames, "1234567890") == [] and align(frames, "111111") == []  # more than 9 frames hold
    assert align(frames, "") == [] and align(frames, "1-5") == []
    blank = np.log(frames[:, BLANK]).sum()  # no digit at all: every frame blank, one alignment
    assert string_log_probability(frames, "") == pytest.approx(blank)


@pytest.mark.parametrize("rule", RULES)
def test_readers_that_agree_give_that_answer(rule):
    d = decide(_seg("2026"), _string("2026"), _crops("2026"), rule)
    assert d.result.digits == "2026" and d.reader in ("segmentation", "string")


@pytest.mark.parametrize("rule", RULES)
def test_a_reader_that_finds_nothing_never_wins(rule):
    d = decide(Result("", 0.0, []), _string("75"), _crops("75"), rule)
    assert (d.result.digits, d.reader) == ("75", "string")
    d = decide(_seg("75"), _string(""), None, rule)
    assert (d.result.digits, d.reader) == ("75", "segmentation")
    d = decide(Result("", 0.0, []), _string(""), None, rule)
    assert d.result.digits == "" and d.reader == ""


def test_disagreement_goes_to_the_answer_both_models_accept():
    """Segmentation cut a cursive 0 in two and read "1060"; the string model read "100" and
    finds "1060" unlikely; the digit model reads the string model's three crops as 1, 0, 0."""
    seg = _seg("1060", confidence=0.9)
    string = _string("100", sure=0.9)
    d = decide(seg, string, _crops("100", 0.9), "joint")
    assert d.reader == "string" and d.result.digits == "100"
    assert d.scores["string"] > d.scores["segmentation"]


def test_disagreement_where_the_digit_model_vetoes_the_string_reading():
    """The string model is torn between "38" and "88" (its frames say 3 at 0.55, 8 at 0.45);
    segmentation reads "88" surely, and the digit model reads the string's first crop as an 8."""
    frames = _frames("38", 0.9)
    frames[1, 3], frames[1, 8] = 0.5, 0.4
    decoded = best_path(frames)
    detail = [
        DigitResult((0, 0, 8, 20), d.label, d.confidence, d.probabilities, False, np.zeros((28, 28)))
        for d in decoded
    ]
    logp = string_log_probability(frames, "38")
    string = StringReading(Result("38", float(np.exp(logp)), detail), frames, decoded, logp)
    crops = _crops("88", 0.97)  # the digit model on the string reader's own crops
    d = decide(_seg("88", 0.97), string, crops, "joint")
    assert (d.reader, d.result.digits) == ("segmentation", "88")
    assert decide(_seg("88", 0.97), string, crops, "string").result.digits == "38"


def test_the_confidence_rule_takes_the_surer_reader():
    assert decide(_seg("17", 0.6), _string("77", 0.95), None, "confidence").reader == "string"
    assert decide(_seg("17", 0.99), _string("77", 0.55), None, "confidence").reader == "segmentation"


def test_digit_log_probability_needs_one_crop_per_digit():
    crops = _crops("42", 0.8)
    assert digit_log_probability(crops, "42") == pytest.approx(2 * np.log(0.8))
    assert digit_log_probability(crops, "421") == float("-inf")
    with pytest.raises(ValueError):
        decide(_seg("1"), _string("1"), None, "vote")


def test_a_single_digit_stays_the_digit_models_unless_asked():
    """Both readers find one digit and disagree: the segmentation reader (the digit and pen
    models, tuned for single digits) answers, whatever the rule; `keep_single=False` lets the
    rule decide."""
    for rule in RULES:
        d = decide(_seg("7", 0.6), _string("1", 0.99), _crops("1", 0.99), rule)
        assert (d.reader, d.result.digits) == ("segmentation", "7")
    d = decide(_seg("7", 0.6), _string("1", 0.99), _crops("1", 0.99), "string", keep_single=False)
    assert (d.reader, d.result.digits) == ("string", "1")


def test_a_second_digit_found_by_either_reader_goes_to_the_rule():
    """A flagged 1 that segmentation cut into "11": the string model reads one digit surely."""
    d = decide(_seg("11", 0.7), _string("1", 0.95), _crops("1", 0.95), "joint")
    assert (d.reader, d.result.digits) == ("string", "1")


def test_a_single_upright_digit_is_not_read_again():
    from digit_app.decide import may_be_a_number

    upright = _seg("7")
    assert not may_be_a_number(upright)
    wide = Result("7", 0.9, [replace(upright.detail[0], box=(0, 0, 40, 20))])
    assert may_be_a_number(wide) and may_be_a_number(_seg("71")) and may_be_a_number(Result("", 0.0, []))


def test_a_sure_string_reading_of_two_digits_or_more_is_shown_at_once():
    from digit_app.decide import SURE, is_sure

    assert is_sure(_string("2026", 0.99))
    assert not is_sure(_string("2026", 0.6))  # P(2026) far below SURE
    assert not is_sure(_string("7", 0.999))  # one digit: the digit model's job
    assert not is_sure(None)
    assert 0.5 < SURE < 1


def test_only_ink_wider_than_tall_is_read_first():
    from digit_app.decide import read_first

    class Reader:
        def read_prepared(self, row):
            return row.box

    wide, tall = np.zeros((60, 200), np.uint8), np.zeros((200, 60), np.uint8)
    wide[20:40, 10:190] = 255
    tall[10:190, 20:40] = 255
    assert read_first(wide, Reader()) is not None
    assert read_first(tall, Reader()) is None
    assert read_first(np.zeros((60, 200), np.uint8), Reader()) is None

"""Suspect corrections: the score on fixed cases, what a retraining may learn from, the stored
scores and reviews (a real SQLite file, and a database made before they existed), and the order
and reasons the Retrain page shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from digit_app import db, insights
from digit_app.config import PROJECT_ROOT, RetrainConfig
from digit_app.feedback import FeedbackError, FeedbackStore, Sample
from digit_app.suspicion import ACCEPTED, REJECTED, Suspicion, is_suspect, nearest_labels, score, usable
from tests.test_pages_feedback import env  # noqa: F401 - fixture

THRESHOLD = RetrainConfig().suspect_threshold


def _probs(reads: int, sure: float, label: int | None = None, p_label: float = 0.0) -> np.ndarray:
    p = np.full(10, 0.0)
    p[reads] = sure
    if label is not None:
        p[label] = p_label
    rest = 1.0 - p.sum()
    p[p == 0] = rest / (p == 0).sum()
    return p


def test_a_clear_label_error_is_suspect_and_says_why() -> None:
    """A 4 the model reads at 99%, stored as 8, whose nearest training digits are all 4s."""
    [s] = score(_probs(4, 0.99, 8, 0.001)[None], [8], np.full((1, 8), 4))
    assert s.checked and s.score >= THRESHOLD
    assert s.reason == "the model reads 4 at 99% (8: 0%), and its 8 nearest training digits are all 4s"


def test_an_honest_hard_case_is_not_suspect() -> None:
    """A 9 the model reads as 4 at 60% (9 at 35%), with 9s and 4s among its neighbours."""
    [s] = score(_probs(4, 0.60, 9, 0.35)[None], [9], np.array([[9, 4, 9, 4, 4, 9, 7, 9]]))
    assert s.score < THRESHOLD
    assert "4 of its 8 nearest training digits are 9s" in s.reason


def test_a_convention_the_model_has_not_learned_is_not_suspect() -> None:
    """A crossed 7 the model reads as 1 at 95%; real writers' crossed 7s are among its neighbours."""
    [s] = score(_probs(1, 0.95, 7, 0.04)[None], [7], np.array([[1, 1, 7, 1, 7, 1, 7, 1]]))
    assert s.score < THRESHOLD


def test_a_second_model_that_reads_the_label_clears_a_confident_misread() -> None:
    """A 9 with an open loop read as 4 at 99%, its neighbours all 4s: the model and its own
    features agree, so only a second network (the string reader) can speak for the label."""
    p, near = _probs(4, 0.99, 9, 0.001)[None], np.full((1, 8), 4)
    [cleared] = score(p, [9], near, np.array([0.6]))
    assert cleared.score < THRESHOLD
    assert cleared.reason.endswith(
        "its 8 nearest training digits are all 4s, and the string reader gives 9 60%"
    )
    [ruled_out] = score(p, [9], near, np.array([0.0001]))
    assert ruled_out.score >= THRESHOLD and ruled_out.reason.endswith("the string reader rules out 9")


def test_the_model_alone_gives_an_unchecked_score_that_holds_nothing_out() -> None:
    [s] = score(_probs(4, 0.99, 8, 0.001)[None], [8])
    assert not s.checked and s.score > THRESHOLD and "not yet checked" in s.reason
    assert usable([s], [None], THRESHOLD).tolist() == [True]


def test_what_a_retraining_learns_from() -> None:
    high, low = Suspicion(0.99, "", True), Suspicion(0.1, "", True)
    reviews = [None, None, ACCEPTED, REJECTED, REJECTED]
    assert usable([high, low, high, low, None], reviews, THRESHOLD).tolist() == [
        False,
        True,
        True,
        False,
        False,
    ]
    assert usable([high, low], [None, None], THRESHOLD, hold_out=False).tolist() == [True, True]


def test_neighbours_are_found_by_cosine() -> None:
    bank = np.eye(3)
    near = nearest_labels(np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 0.9]]), bank, np.array([5, 6, 7]), 1)
    assert near.tolist() == [[5], [7]]
    assert nearest_labels(np.zeros((0, 3)), bank, np.array([5, 6, 7]), 2).shape == (0, 0)


@pytest.fixture
def store(env: Path) -> FeedbackStore:  # noqa: F811 - the fixture imported above
    """A fresh database and a store with the served version (`test_pages_feedback.env`)."""
    return FeedbackStore()


def _sample(label: int, reads: int, sure: float, seed: int = 0) -> Sample:
    image = np.random.default_rng(seed).random((28, 28), dtype=np.float32)
    return Sample(image, label, reads, _probs(reads, sure).tolist(), 1, "canvas", "s")


def test_saving_scores_with_the_model_alone_then_a_retraining_checks(store: FeedbackStore) -> None:
    [row_id] = store.add_many([_sample(8, 4, 0.99)])
    [row] = store.rows()
    assert not row.suspicion_checked and row.suspicion == pytest.approx(1 - _probs(4, 0.99)[8], abs=1e-3)
    store.set_suspicion({row_id: Suspicion(0.97, "checked reason", True)}, 1)
    [row] = store.rows()
    assert (row.suspicion, row.suspicion_reason, row.suspicion_checked) == (0.97, "checked reason", True)


def test_reviews_are_recorded_and_validated(store: FeedbackStore) -> None:
    [row_id] = store.add_many([_sample(8, 4, 0.99)])
    store.review(row_id, REJECTED)
    assert store.rows()[0].review == REJECTED
    assert store.training_rows()[4] == [REJECTED]
    with pytest.raises(FeedbackError):
        store.review(row_id, "maybe")
    with pytest.raises(FeedbackError):
        store.review(row_id + 1, ACCEPTED)


def test_a_database_from_before_suspicion_gets_the_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the feedback table as schema 2 made it
        conn.exec_driver_sql(
            "CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at FLOAT NOT NULL,"
            " updated_at FLOAT, session_id VARCHAR(64) NOT NULL, source VARCHAR(16) NOT NULL,"
            " model_version INTEGER, predicted INTEGER, label INTEGER NOT NULL, confidence FLOAT,"
            " probabilities TEXT, image28 BLOB NOT NULL, original_png BLOB)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE schema_meta (key VARCHAR(32) PRIMARY KEY, value VARCHAR(64) NOT NULL)"
        )
        conn.exec_driver_sql("INSERT INTO schema_meta VALUES ('version', '1')")
        conn.execute(
            sa.text(
                "INSERT INTO feedback (created_at, session_id, source, label, predicted, image28) VALUES (1, 'old', 'canvas', 4, 9, :img)"
            ),
            {"img": np.zeros((28, 28), "<f4").tobytes()},
        )
    engine.dispose()
    try:
        store = FeedbackStore(url)
        [row] = store.rows()
        assert (row.label, row.predicted, row.suspicion, row.review) == (4, 9, None, None)
        store.review(row.id, ACCEPTED)
        assert store.rows()[0].review == ACCEPTED
    finally:
        db.dispose_all()


def test_review_order_puts_suspects_first_then_the_least_sure(store: FeedbackStore) -> None:
    ids = store.add_many(
        [_sample(8, 4, 0.99, 1), _sample(3, 5, 0.55, 2), _sample(1, 7, 0.9, 3), _sample(2, 6, 0.7, 4)]
    )
    store.set_suspicion({ids[0]: Suspicion(0.98, "a", True), ids[2]: Suspicion(0.99, "b", True)}, 1)
    order = [r.id for r in insights.review_order(store.rows(), THRESHOLD)]
    assert order == [ids[2], ids[0], ids[1], ids[3]]
    store.review(ids[2], REJECTED)  # decided: no longer first
    assert [r.id for r in insights.review_order(store.rows(), THRESHOLD)][0] == ids[0]
    assert not is_suspect(0.99, True, REJECTED, THRESHOLD) and not is_suspect(0.99, False, None, THRESHOLD)


def test_the_retrain_page_shows_suspects_first_with_their_reason(
    store: FeedbackStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = store.add_many([_sample(3, 5, 0.55, 2), _sample(8, 4, 0.99, 1)])
    store.set_suspicion(
        {
            ids[1]: Suspicion(
                0.97, "the model reads 4 at 99%, and its 8 nearest training digits are all 4s", True
            )
        },
        1,
    )
    monkeypatch.setenv("DIGIT_APP_ADMIN_PASSWORD", "s3cret-pass")
    at = AppTest.from_file(str(PROJECT_ROOT / "digit_app" / "pages" / "retrain.py"), default_timeout=60).run()
    assert not at.exception
    cards = [c.value for c in at.caption if c.value.startswith(("**suspect**", "#"))]
    assert cards[0].startswith(f"**suspect** · #{ids[1]}") and cards[1].startswith(f"#{ids[0]}")
    assert any("all 4s" in c.value for c in at.caption)
    at.button(key=f"rejected-{ids[1]}").click().run()  # refused without the password
    assert at.error and store.rows()[0].review is None
    at.text_input(key="admin_password").input("s3cret-pass").run()
    at.button(key=f"rejected-{ids[1]}").click().run()
    assert not at.exception
    assert {r.id: r.review for r in store.rows()}[ids[1]] == REJECTED

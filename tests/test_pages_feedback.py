"""AppTests of the feedback loop's pages: saving feedback, the live matrix, retraining and versions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from digit_app import admin, db
from digit_app.config import PROJECT_ROOT, get_settings
from digit_app.feedback import FeedbackStore, Filters, Sample
from digit_app.model_store import read_card
from tests.store_support import SERVED_VERSION
from tests.test_pages import _drawn_digit, fake_canvas  # noqa: F401 - fixture

PAGES = PROJECT_ROOT / "digit_app" / "pages"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh database and a model store holding a copy of the served version, as version 1."""
    monkeypatch.setenv("DIGIT_APP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DIGIT_APP_MODEL_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("DIGIT_APP_DATABASE_URL", raising=False)
    monkeypatch.delenv("DIGIT_APP_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("DIGIT_APP_REQUIRE_ADMIN", raising=False)
    monkeypatch.setattr(admin, "_secrets_files", lambda: [])
    admin.limiter.reset()
    shutil.copytree(SERVED_VERSION, tmp_path / "store" / "mnist_cnn" / "1")
    yield tmp_path
    db.dispose_all()


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=60)


def _samples(n: int, wrong_every: int = 3) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        label = i % 10
        predicted = (label + 1) % 10 if i % wrong_every == 0 else label
        out.append(
            Sample(rng.random((28, 28), dtype=np.float32), label, predicted, [0.1] * 10, 1, "canvas", "s")
        )
    return out


def test_draw_page_saves_a_correction(env: Path, fake_canvas: dict) -> None:  # noqa: F811
    fake_canvas["rgba"] = _drawn_digit("3")
    at = _page("draw").run()
    assert at.metric[0].value == "3"
    at.text_input[0].input("8")
    at.button[0].click()
    at.run()
    assert not at.exception
    rows = FeedbackStore().rows()
    assert [(r.label, r.predicted, r.source, r.model_version) for r in rows] == [(8, 3, "canvas", 1)]
    assert any("correction" in s.value for s in at.success)
    at.run()  # the same drawing again: stored once only
    assert FeedbackStore().count() == 1


def test_draw_page_rejects_a_wrong_number_of_digits(env: Path, fake_canvas: dict) -> None:  # noqa: F811
    fake_canvas["rgba"] = _drawn_digit("3")
    at = _page("draw").run()
    at.text_input[0].input("38")
    at.button[0].click()
    at.run()
    assert not at.exception
    assert at.warning and "1 digit" in at.warning[0].value
    assert FeedbackStore().count() == 0


def test_insights_page_empty_and_with_feedback(env: Path) -> None:
    at = _page("insights").run()
    assert not at.exception
    assert at.metric[0].value == "0"
    FeedbackStore().add_many(_samples(30))
    at = _page("insights").run()
    assert not at.exception
    values = {m.label: m.value for m in at.metric}
    assert values["Samples"] == "30"
    assert values["Corrections"] == "10"
    assert values["Accuracy on feedback"] == "66.7%"
    assert any("read as" in m.value for m in at.markdown)


def test_retrain_page_lists_corrections_and_versions(env: Path) -> None:
    FeedbackStore().add_many(_samples(12))
    at = _page("retrain").run()
    assert not at.exception
    values = {m.label: m.value for m in at.metric}
    assert values["Feedback samples"] == "12"
    assert values["Corrections"] == "4"
    versions = at.dataframe[0].value  # the versions table, accuracies in percent (99.60, not 0.996)
    served = read_card(get_settings().model_dir)
    assert versions["MNIST test accuracy"].iloc[0] == pytest.approx(100 * served["test"]["accuracy"])
    assert any("No retraining" in c.value for c in at.caption)


def test_retrain_page_admin_actions_need_the_password(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGIT_APP_ADMIN_PASSWORD", "s3cret-pass")
    ids = FeedbackStore().add_many(_samples(3, wrong_every=1))
    at = _page("retrain").run()
    at.button(key=f"delete-{ids[0]}").click().run()
    assert not at.exception
    assert at.error and "password" in at.error[0].value
    assert FeedbackStore().count() == 3
    at.text_input(key="admin_password").input("s3cret-pass").run()
    at.button(key=f"delete-{ids[0]}").click().run()
    assert not at.exception
    assert FeedbackStore().count() == 2
    assert all("s3cret" not in e.value for e in at.error)


def test_retrain_page_rollback_publishes_a_new_version(env: Path) -> None:
    store = env / "store" / "mnist_cnn"
    shutil.copytree(store / "1", store / "2")
    at = _page("retrain").run()
    at.selectbox(key="rollback_to").select(1)
    at.button(key="rollback").click().run()
    assert not at.exception
    assert (store / "3" / "saved_model.pb").is_file()
    assert any("version 3" in s.value for s in at.success)


def test_delete_my_session_feedback(env: Path, fake_canvas: dict) -> None:  # noqa: F811
    other = FeedbackStore().add_many(_samples(2))
    assert FeedbackStore().count(Filters()) == len(other)
    at = _page("retrain").run()
    at.button(key="delete_mine").click().run()
    assert not at.exception
    assert FeedbackStore().count() == 2  # other sessions' rows are kept

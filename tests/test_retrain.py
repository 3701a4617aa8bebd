"""Retraining: the gate, rollback copies, the config, and real fine-tuning runs (killed, cancelled, done)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from digit_app import db, model_store
from digit_app.config import PROJECT_ROOT, STRING_MODEL, RetrainConfig, retrain_config_dict
from digit_app.feedback import FeedbackStore, Sample
from digit_app.jobs import FINISHED, Job, JobStore, _process_alive
from tests.store_support import SERVED_VERSION
from training.gate import gate
from training.retrain import CancelledError, Reporter

# --- gate() on synthetic probabilities -------------------------------------------------------

Y_TEST = np.repeat(np.arange(10), 200)  # 2,000 "test images", 200 of each digit
Y_FB = np.arange(40) % 10


def _probs(pred: np.ndarray) -> np.ndarray:
    p = np.full((len(pred), 10), 0.01, np.float32)
    p[np.arange(len(pred)), pred] = 0.91
    return p


def _wrong(y: np.ndarray, idx: list[int] | np.ndarray) -> np.ndarray:
    """Predictions equal to y except at idx, which are wrong."""
    pred = y.copy()
    pred[idx] = (pred[idx] + 1) % 10
    return pred


def _first_of(digit: int, n: int) -> list[int]:
    return np.flatnonzero(digit == Y_TEST)[:n].tolist()


def _gate(
    cand_test: np.ndarray, cand_fb: np.ndarray, base_test: np.ndarray | None = None, **cfg: float
) -> dict:
    base_test = Y_TEST if base_test is None else base_test
    return gate(
        RetrainConfig(**cfg),
        Y_TEST,
        _probs(base_test),
        _probs(cand_test),
        Y_FB,
        _probs((Y_FB + 1) % 10),  # the served model got all the feedback wrong (corrections)
        _probs(cand_fb),
    )


def test_gate_passes_a_better_candidate() -> None:
    base = _wrong(Y_TEST, list(range(0, 2000, 100)))  # 20 errors
    report = _gate(Y_TEST, Y_FB, base_test=base)
    assert report["passed"] is True
    assert report["checks"] == {"mnist": True, "per_class": True, "feedback": True}
    assert report["reasons"] == []
    assert report["mnist_test"] == {"served": 0.99, "candidate": 1.0, "n": 2000}
    assert report["feedback"] == {"served": 0.0, "candidate": 1.0, "n": 40}
    assert report["worst_class_drop"]["points"] <= 0
    json.dumps(report)  # stored as the job result and in the card


def test_gate_allows_drops_up_to_the_limits() -> None:
    # 2 errors in 2,000 = 0.1 point (the default limit), in two digits (0.5 point each)
    report = _gate(_wrong(Y_TEST, _first_of(3, 1) + _first_of(8, 1)), _wrong(Y_FB, [0, 1]))
    assert report["passed"], report["reasons"]  # 38/40 = 95% of the feedback: just enough


def test_gate_rejects_an_mnist_drop() -> None:
    one_per_digit = [_first_of(d, 1)[0] for d in range(10)]  # 0.5 point overall, 0.5 per digit
    report = _gate(_wrong(Y_TEST, one_per_digit), Y_FB)
    assert report["passed"] is False
    assert report["checks"] == {"mnist": False, "per_class": True, "feedback": True}
    assert report["reasons"] == ["MNIST test accuracy would drop 0.50 points (allowed 0.10)"]
    assert report["mnist_test"]["candidate"] == pytest.approx(0.995)
    # a looser limit lets the same candidate through
    assert _gate(_wrong(Y_TEST, one_per_digit), Y_FB, max_mnist_drop=0.005)["passed"]


def test_gate_rejects_a_per_class_drop_hidden_in_the_average() -> None:
    # the candidate fixes three 3s and breaks three 7s: the same overall accuracy, but one
    # digit got worse (what poisoned labels, e.g. 7s relabelled as 1s, would do)
    base = _wrong(Y_TEST, _first_of(3, 3))
    cand = _wrong(Y_TEST, _first_of(7, 3))
    report = _gate(cand, Y_FB, base_test=base)
    assert report["mnist_test"]["served"] == report["mnist_test"]["candidate"]
    assert report["checks"] == {"mnist": True, "per_class": False, "feedback": True}
    assert report["worst_class_drop"] == {"digit": 7, "points": 1.5}
    assert report["reasons"] == ["recall of digit 7 would drop 1.50 points (allowed 1.00)"]


def test_gate_rejects_low_feedback_accuracy() -> None:
    report = _gate(Y_TEST, _wrong(Y_FB, [0, 1, 2, 3]))  # 36/40
    assert report["checks"] == {"mnist": True, "per_class": True, "feedback": False}
    assert report["reasons"] == ["it gets only 90.0% of the feedback right (needs 95%)"]
    assert report["feedback"]["candidate"] == pytest.approx(0.9)
    assert _gate(Y_TEST, _wrong(Y_FB, [0, 1, 2, 3]), min_feedback_accuracy=0.9)["passed"]


def test_gate_lists_every_reason() -> None:
    cand = _wrong(Y_TEST, _first_of(5, 30))
    report = _gate(cand, (Y_FB + 1) % 10)
    assert report["passed"] is False
    assert not any(report["checks"].values())
    assert len(report["reasons"]) == 3
    text = "; ".join(report["reasons"])
    assert "MNIST test accuracy would drop 1.50 points" in text
    assert "recall of digit 5 would drop 15.00 points" in text
    assert "only 0.0% of the feedback" in text


def test_gate_without_feedback_or_with_a_missing_digit() -> None:
    y = np.array([0, 1, 2, 2])  # digits 3-9 absent from this tiny test set
    report = gate(
        RetrainConfig(), y, _probs(y), _probs(y), np.zeros(0, int), np.zeros((0, 10)), np.zeros((0, 10))
    )
    assert report["passed"]
    assert report["feedback"] == {"served": 1.0, "candidate": 1.0, "n": 0}


# --- republish (rollback) -----------------------------------------------------------------


def _fake_version(model_dir: Path, version: int, card: dict | None) -> Path:
    path = model_dir / str(version)
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"graph-" + str(version).encode())
    (path / "variables" / "variables.index").write_bytes(b"weights")
    if card is not None:
        (path / model_store.EXTRA_DIR).mkdir()
        (path / model_store.EXTRA_DIR / model_store.CARD_NAME).write_text(json.dumps(card))
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_republish_copies_an_old_version_as_the_newest(tmp_path: Path) -> None:
    model_dir = tmp_path / "mnist_cnn"
    v1 = _fake_version(model_dir, 1, {"created": "2020-01-01", "test": {"accuracy": 0.99}})
    _fake_version(model_dir, 2, {"created": "2021-01-01"})
    before = {v: _snapshot(model_dir / str(v)) for v in (1, 2)}

    assert model_store.republish(model_dir, 1, reason="rollback to version 1") == 3
    assert model_store.list_versions(model_dir) == [1, 2, 3]
    assert model_store.latest_version(model_dir) == 3
    assert {v: _snapshot(model_dir / str(v)) for v in (1, 2)} == before  # originals untouched
    card = model_store.read_card(model_dir, 3)
    assert card["republished_from"] == 1
    assert card["republish_reason"] == "rollback to version 1"
    assert card["test"] == {"accuracy": 0.99} and card["created"] != "2020-01-01"
    copy = _snapshot(model_dir / "3")
    assert copy["saved_model.pb"] == (v1 / "saved_model.pb").read_bytes()
    assert copy["variables/variables.index"] == b"weights"
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2", "3"]  # no staging folder left

    assert model_store.republish(model_dir, 2) == 4  # and again, to another one
    assert model_store.read_card(model_dir, 4)["republished_from"] == 2


def test_republish_without_card_and_of_a_missing_version(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    _fake_version(model_dir, 1, None)
    assert model_store.republish(model_dir, 1) == 2
    assert model_store.read_card(model_dir, 2)["republished_from"] == 1
    assert model_store.read_card(model_dir, 1) == {}
    with pytest.raises(model_store.ModelStoreError):
        model_store.republish(model_dir, 9)
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2"]


# --- the retraining config -----------------------------------------------------------------


def test_retrain_config_dict_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGIT_APP_RETRAIN_CONFIG", raising=False)
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "mnist"))
    monkeypatch.delenv("HANDWRITING_DIR", raising=False)
    values = retrain_config_dict()
    assert values == {**RetrainConfig().to_dict(), "data_dir": str(tmp_path / "mnist")}

    monkeypatch.setenv("HANDWRITING_DIR", str(tmp_path / "hw"))
    assert retrain_config_dict()["handwriting_dir"] == str(tmp_path / "hw")

    monkeypatch.setenv("DIGIT_APP_RETRAIN_CONFIG", '{"epochs": 1, "replay": 500}')
    values = retrain_config_dict({"replay": 2000, "data_dir": "/elsewhere"})
    assert (values["epochs"], values["replay"], values["data_dir"]) == (1, 2000, "/elsewhere")
    json.dumps(values)  # stored in the job row

    cfg = RetrainConfig.from_dict({**values, "out": str(tmp_path / "store")})
    assert cfg.data_dir == Path("/elsewhere") and cfg.out == tmp_path / "store"
    assert cfg.resolved_out() == tmp_path / "store"
    with pytest.raises(ValueError, match="epoch"):
        retrain_config_dict({"epoch": 1})
    monkeypatch.setenv("DIGIT_APP_RETRAIN_CONFIG", '{"learning_rat": 1}')
    with pytest.raises(ValueError, match="learning_rat"):
        retrain_config_dict()


def test_reporter_heartbeats_and_sees_cancel(tmp_path: Path) -> None:
    jobs = JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
    try:
        job = jobs.create({})
        reporter = Reporter(jobs, job.id, echo=False)
        reporter.update(force=True, phase="training", step=1)
        assert jobs.get(job.id).progress["phase"] == "training"
        jobs.request_cancel(job.id)
        reporter.update(step=2)  # throttled: no database round trip yet
        with pytest.raises(CancelledError):
            reporter.update(force=True, step=3)
        assert jobs.get(job.id).progress["step"] == 3
        Reporter(None, None, echo=False).update(force=True, phase="cli")  # no job: just runs
    finally:
        db.dispose_all()


# --- neighbour replay ------------------------------------------------------------------------


def _tiny_classifier():  # noqa: ANN202 - keras.Model
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def test_nearest_images_finds_each_anchor_and_its_look_alikes() -> None:
    from training.replay import nearest_images, teacher_view

    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    pool[200] = np.clip(pool[17].astype(int) + 3, 0, 255)  # a near copy of image 17
    model = _tiny_classifier()
    pool_features, probs = teacher_view(model, pool)
    np.testing.assert_allclose(probs, model.predict(pool[..., None] / 255.0, verbose=0), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(pool_features, axis=1), 1.0, atol=1e-5)
    anchors = teacher_view(model, pool[[17, 40]])[0]
    assert set(nearest_images(anchors, pool_features, 1)) == {17, 40}
    found = nearest_images(anchors, pool_features, 2)
    assert len(found) == 4 and {17, 40, 200} <= set(found)
    assert len(nearest_images(anchors[:0], pool_features, 5)) == 0


def test_training_mix_replays_the_neighbours_of_corrections_only() -> None:
    from training.head import Head
    from training.replay import training_mix

    rng = np.random.default_rng(1)
    x_mn = rng.integers(0, 256, (100, 28, 28), dtype=np.uint8)  # the whole pool is replayed
    y_mn = rng.integers(0, 10, 100)
    head = Head(_tiny_classifier())
    pool = (head.features(x_mn), y_mn)
    view = head.view(pool[0])
    fb = (pool[0][[3, 4]][None], np.array([1, 2]))  # one copy of two feedback images
    anchors = view.unit[[3]]  # only image 3 is a correction
    cfg = RetrainConfig(replay=100, feedback_share=0.5, neighbours=1, distill=0.0)
    x, t = training_mix(cfg, fb, pool, view, anchors)
    plain, _ = training_mix(RetrainConfig(replay=100, feedback_share=0.5, distill=0.0), fb, pool)
    # 100 replayed + 100 feedback; with neighbours, the correction's nearest replayed image
    # (itself, image 3) is replayed as often as each feedback sample (50 times) with its label.
    assert len(plain) == 200 and len(x) == 250
    copies = np.all(np.isclose(x, pool[0][3]), axis=1)
    assert copies.sum() - np.all(np.isclose(plain, pool[0][3]), axis=1).sum() == 50
    assert np.all(t[copies & (np.arange(len(x)) < 150)].argmax(1) == y_mn[3])
    distilled, targets = training_mix(
        RetrainConfig(replay=100, feedback_share=0.5, distill=1.0), fb, pool, view
    )
    np.testing.assert_allclose(
        targets[:100],
        view.probs[np.all(np.isclose(distilled[:100, None], pool[0][None]), axis=2).argmax(1)],
        atol=1e-6,
    )


def test_head_shares_the_model_weights_and_answers_like_it() -> None:
    """Fitting the head fine-tunes the full model in place; its answers are the model's."""
    from training.head import Head

    model = _tiny_classifier()
    head = Head(model)
    images = np.random.default_rng(2).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    np.testing.assert_allclose(
        head.probs(head.features(images)), model.predict(images[..., None] / 255.0, verbose=0), atol=1e-5
    )
    head.model.layers[-1].kernel.assign(np.zeros(head.model.layers[-1].kernel.shape))
    np.testing.assert_allclose(
        model.predict(images[..., None] / 255.0, verbose=0)[0],
        head.probs(head.features(images))[0],
        atol=1e-5,
    )
    assert len(head.features(images[:0])) == 0 and len(head.view(head.features(images[:0])).probs) == 0


# --- real fine-tuning runs (slow) -----------------------------------------------------------


@pytest.fixture(scope="module")
def mnist(mnist_dir: Path):  # noqa: ANN201 - training.data.Mnist
    from training.data import load_mnist

    return load_mnist(mnist_dir, progress=False)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mnist_dir: Path) -> Iterator[Path]:
    """A temporary store holding a copy of the shipped model, and a temporary database."""
    if not (SERVED_VERSION / model_store.EXTRA_DIR / "model.keras").is_file():
        pytest.skip("the shipped model has no model.keras to fine-tune")
    model_dir = tmp_path / "store" / "mnist_cnn"
    shutil.copytree(SERVED_VERSION, model_dir / "1")
    for name in ("DIGIT_APP_RETRAIN_CONFIG", "DIGIT_APP_JOB_STALE_SECONDS", "DIGIT_APP_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    monkeypatch.setenv("DIGIT_APP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DIGIT_APP_MODEL_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("DIGIT_APP_MODEL_NAME", "mnist_cnn")
    monkeypatch.setenv("DIGIT_APP_DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'feedback.sqlite3'}")
    yield model_dir
    db.dispose_all()


@pytest.fixture
def launched() -> Iterator[list[int]]:
    """Pids of worker processes a test started; any still alive at the end are killed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _process_alive(pid):
            os.kill(pid, signal.SIGKILL)


def _add_feedback(mnist, n: int = 40) -> list[int]:  # noqa: ANN001
    """Corrections made from MNIST training images: true labels, wrong 'predictions'."""
    rng = np.random.default_rng(7)
    idx = rng.choice(len(mnist.y_train), size=n, replace=False)
    samples = [
        Sample(
            image28=mnist.x_train[i].astype(np.float32) / 255.0,
            label=int(mnist.y_train[i]),
            predicted=(int(mnist.y_train[i]) + 1) % 10,
            model_version=1,
            source="canvas",
            session_id="retrain-test",
            original=mnist.x_train[i],
        )
        for i in idx
    ]
    return FeedbackStore().add_many(samples)


def _names(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir())


def _wait(jobs: JobStore, job_id: int, done: Callable[[Job], bool], timeout: float, what: str) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = jobs.get(job_id)
        assert job is not None
        if done(job):
            return job
        if job.status in FINISHED or time.monotonic() > deadline:
            pytest.fail(
                f"job {job_id} never got {what}: status {job.status}, progress {job.progress}, "
                f"message {job.message}\n--- log ---\n{job.log_tail()}"
            )
        time.sleep(0.2)


def _training(job: Job) -> bool:
    return job.status == "running" and job.progress.get("phase") == "training"


LONG = {"replay": 20000, "epochs": 3, "test_limit": 2000}  # minutes of training: it is stopped early


@pytest.mark.slow
def test_kill_9_during_training_fails_the_job_and_frees_the_lock(
    served: Path, mnist, launched: list[int]
) -> None:
    _add_feedback(mnist)
    jobs = JobStore()
    before = _names(served)
    job = jobs.launch(retrain_config_dict({**LONG, "out": str(served)}))
    launched.append(job.pid)
    assert job.status in {"starting", "running"} and job.log_path

    job = _wait(jobs, job.id, _training, 300, "to training")
    assert job.pid == launched[0]  # the worker attached itself: its own pid, on this host
    os.kill(job.pid, signal.SIGKILL)

    t0 = time.monotonic()
    job = _wait(jobs, job.id, lambda j: j.status != "running", 10, "reaped")
    assert job.status == "failed"
    assert time.monotonic() - t0 < 10
    assert "died" in job.message and "nothing was published" in job.message
    assert not _process_alive(job.pid)

    assert _names(served) == before == ["1"]
    assert model_store.list_versions(served) == [1]
    assert jobs.active() is None
    new = jobs.create({})  # the lock is free
    jobs.finish(new.id, "cancelled")
    assert FeedbackStore().integrity_check() == "ok"
    assert FeedbackStore().count() == 40


@pytest.mark.slow
def test_cancel_during_training_publishes_nothing(served: Path, mnist, launched: list[int]) -> None:
    _add_feedback(mnist)
    jobs = JobStore()
    job = jobs.launch(retrain_config_dict({**LONG, "out": str(served)}))
    launched.append(job.pid)
    _wait(jobs, job.id, _training, 300, "to training")

    jobs.request_cancel(job.id)
    job = _wait(jobs, job.id, lambda j: j.status in FINISHED, 120, "cancelled")
    assert job.status == "cancelled", (job.message, job.log_tail())
    assert "nothing was published" in job.message
    # stopped within a few steps, not at the end of the epoch or the run
    assert job.progress["epoch"] == 1 and job.progress["step"] < job.progress["steps"]
    deadline = time.monotonic() + 30
    while _process_alive(job.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _process_alive(job.pid)  # the worker exits on its own

    assert _names(served) == ["1"]
    assert not (Path(os.environ["DIGIT_APP_DATA_DIR"]) / "candidates").exists()
    new = jobs.create({})
    jobs.finish(new.id, "cancelled")
    assert FeedbackStore().integrity_check() == "ok"


@pytest.mark.slow
@pytest.mark.parametrize(
    "gate_flags",
    [
        [],  # the default gate: published or kept aside, whichever the candidate earns
        ["--max-mnist-drop", "1", "--max-class-drop", "1", "--min-feedback-accuracy", "0"],  # must publish
    ],
    ids=["default-gate", "open-gate"],
)
def test_retrain_cli_end_to_end(served: Path, mnist, tmp_path: Path, gate_flags: list[str]) -> None:
    ids = _add_feedback(mnist)
    for name in (STRING_MODEL, STRING_MODEL + "-tflite"):  # the string reader checks labels too
        (served.parent / name).symlink_to(PROJECT_ROOT / "model_store" / name, target_is_directory=True)
    command = [sys.executable, "-m", "training.retrain", "--out", str(served)]
    command += ["--replay", "1000", "--epochs", "1", "--test-limit", "2000", *gate_flags]
    proc = subprocess.run(
        command, cwd=PROJECT_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    [job] = JobStore().recent()
    assert job.status in {"published", "rejected"}, job.message
    if gate_flags:
        assert job.status == "published", job.message
    assert job.config["replay"] == 1000 and job.config["epochs"] == 1
    assert job.config["data_dir"] == os.environ["MNIST_DIR"]
    assert JobStore().active() is None
    report = job.result["gate"]
    assert report["passed"] == (job.status == "published")
    labels = report["labels"]  # every stored label checked; a suspect one (the tiny model) held out
    assert labels["stored"] == len(ids) and labels["used"] + labels["held_out_suspect"] == len(ids)
    assert report["feedback"]["n"] == labels["used"] == report["corrections"]["n"]
    assert report["mnist_test"]["n"] == 2000
    assert all("the string reader" in row.suspicion_reason for row in FeedbackStore().rows())
    assert job.result["base_version"] == 1
    assert not [n for n in _names(served) if n.startswith(".")]  # no staging leftovers

    if job.status == "published":
        assert job.result["version"] == 2 and model_store.list_versions(served) == [1, 2]
        card = model_store.read_card(served, 2)
        assert card["parent_version"] == 1 and card["retrain"]["gate"]["passed"]
        parent = model_store.read_card(served, 1)
        if "calibration" in parent:  # the parent's temperature is applied to the child too
            assert card["calibration"]["temperature"] == parent["calibration"]["temperature"]
            assert card["calibration"]["inherited_from"] == 1
        assert (served / "2" / model_store.EXTRA_DIR / "model.keras").is_file()
        from digit_app.predictor import Predictor

        predictor = Predictor.load(served)
        assert predictor.version == 2
        probs = predictor.predict_probabilities(mnist.x_test[:200, :, :, None].astype(np.float32) / 255.0)
        assert (probs.argmax(1) == mnist.y_test[:200]).mean() > 0.95
        import sqlalchemy as sa

        from digit_app import db

        with FeedbackStore().engine.connect() as conn:  # every label rescored by the new version
            versions = conn.execute(sa.select(db.feedback.c.suspicion_version)).scalars().all()
        assert versions == [2] * len(ids)
    else:
        assert job.result["version"] is None and model_store.list_versions(served) == [1]
        assert report["reasons"] and "did not pass the gate" in job.message
        aside = Path(job.result["candidate"])
        assert aside.parent == tmp_path / "data" / "candidates"
        assert (aside / "model.keras").is_file() and (aside / "report.json").is_file()
    assert FeedbackStore().integrity_check() == "ok"


def test_real_replay_takes_train_digits_found_here_and_never_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.handwriting import handwriting_dir
    from training import handwriting
    from training.replay import real_pool

    x, y, card = real_pool(60, handwriting_dir(), seed=0)
    assert x.shape == (60, 28, 28) and x.dtype == np.uint8 and len(y) == 60
    assert card["count"] == 60 and card["sets"] == sorted(handwriting.TRAIN_SETS)
    monkeypatch.setenv("DIGIT_APP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(handwriting, "UCI", "http://127.0.0.1:9/nothing-listens")
    x, y, card = real_pool(60, tmp_path / "empty", seed=0)
    assert len(x) == 0 and card["count"] == 0 and not (tmp_path / "cache").exists()

"""Fine-tune the served model on users' feedback and publish it only if it passes the gate.

    python -m training.retrain                 # from the command line (takes the same lock as the UI)
    python -m training.retrain --job 12        # the worker process the Retrain page starts

The stored labels are checked first (`training.gate.check_labels`). The candidate's dense head
(`training.head`) then learns the feedback (oversampled, with mildly varied copies) mixed with a
replayed sample of MNIST and real train-split handwriting, so it forgets nothing it knew. It is published as the next version only
if its MNIST test accuracy drops by at most `max_mnist_drop`, no digit's recall drops by
more than `max_class_drop`, and it gets at least `min_feedback_accuracy` of the feedback
right. Otherwise it is kept aside with its report and the served model stays.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from digit_app import model_store  # noqa: E402
from digit_app.config import RetrainConfig, get_settings, retrain_config_dict  # noqa: E402
from digit_app.feedback import FeedbackStore  # noqa: E402
from digit_app.jobs import JobBusyError, JobStore  # noqa: E402
from training.config import add_config_arguments  # noqa: E402
from training.data import DataError, load_mnist  # noqa: E402
from training.gate import check_labels, gate, score_labels, second_opinion  # noqa: E402
from training.head import Head  # noqa: E402
from training.replay import replay_pool, training_mix  # noqa: E402

MAX_FEEDBACK_ROWS = 60_000  # feedback images and their varied copies learned per retraining


class CancelledError(Exception):
    """The user pressed Cancel."""


class RetrainError(RuntimeError):
    """Nothing to learn from, or the base model cannot be fine-tuned."""


class Reporter:
    """Sends progress to the job row (and the terminal); tells the training loop about Cancel."""

    def __init__(self, jobs: JobStore | None, job_id: int | None, echo: bool = True) -> None:
        self.jobs, self.job_id, self.echo = jobs, job_id, echo
        self.start = time.monotonic()
        self.last = 0.0
        self.state: dict[str, Any] = {}
        self.cancel_seen = False
        self._stop = threading.Event()

    def keep_alive(self, every: float = 5.0) -> None:
        """Heartbeat from a thread too, so loading, evaluating and exporting never look like a dead job."""
        if self.jobs is None or self.job_id is None:
            return

        def beat() -> None:
            while not self._stop.wait(every):
                try:
                    if self.jobs.heartbeat(self.job_id, dict(self.state)):
                        self.cancel_seen = True
                except Exception:  # noqa: BLE001 - a missed beat is retried; the main loop reports errors
                    pass

        threading.Thread(target=beat, daemon=True, name="heartbeat").start()

    def stop(self) -> None:
        self._stop.set()

    def update(self, force: bool = False, **progress: Any) -> None:
        self.state.update(progress)
        self.state["elapsed"] = round(time.monotonic() - self.start, 1)
        now = time.monotonic()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        if self.echo:
            s = self.state
            where = (
                f" epoch {s.get('epoch')}/{s.get('epochs')} step {s.get('step')}/{s.get('steps')}"
                if "step" in s
                else ""
            )
            print(f"[{s['elapsed']:6.1f}s] {s.get('phase', '')}{where}", flush=True)
        if self.jobs is not None and self.job_id is not None and self.jobs.heartbeat(self.job_id, self.state):
            self.cancel_seen = True
        if self.cancel_seen:
            raise CancelledError()


def _progress_callback(reporter: Reporter, epochs: int, steps_per_epoch: int) -> Any:
    import keras

    class _Progress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.t0 = time.monotonic()

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            done = self.epoch * steps_per_epoch + batch + 1
            total = epochs * steps_per_epoch
            elapsed = time.monotonic() - self.t0
            eta = elapsed / done * (total - done)
            try:
                reporter.update(
                    phase="training",
                    epoch=self.epoch + 1,
                    epochs=epochs,
                    step=batch + 1,
                    steps=steps_per_epoch,
                    fraction=done / total,
                    eta=round(eta, 1),
                )
            except CancelledError:
                self.model.stop_training = True
                reporter.state["cancelled"] = True

    return _Progress()


def _varied(cfg: RetrainConfig, x: np.ndarray) -> np.ndarray:
    """(feedback_copies - 1, N, 28, 28) in 0..1: mildly varied copies of the feedback images,
    so the head learns the drawing, not its exact pixels."""
    import tensorflow as tf

    from training.augment import random_geometry

    tf.random.set_seed(cfg.seed)
    x = x.astype(np.float32) / 255.0 if x.max(initial=0) > 1.5 else x.astype(np.float32)
    a = max(cfg.augment, 0.0)  # mild: the feedback must still be exactly what the user drew
    # Bounded: the copies' features (3,200 floats each) must fit in memory for any store size.
    copies = max(1, min(cfg.feedback_copies, MAX_FEEDBACK_ROWS // max(len(x), 1)))
    varied = [
        tf.clip_by_value(random_geometry(tf.constant(x), 6.0 * a, 1.5 * a, 0.06 * a, 0.06 * a, 0.5 * a), 0, 1)
        for _ in range(copies - 1)
    ]
    return np.stack([v.numpy() for v in varied]) if varied else np.zeros((0, *x.shape), np.float32)


def _dataset(cfg: RetrainConfig, x: np.ndarray, t: np.ndarray) -> Any:
    import tensorflow as tf

    return (
        tf.data.Dataset.from_tensor_slices((x, t))
        .shuffle(len(x), seed=cfg.seed, reshuffle_each_iteration=True)
        .batch(cfg.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def retrain(cfg: RetrainConfig, reporter: Reporter, job_id: int | None = None) -> dict[str, Any]:
    """The whole fine-tuning run; returns the job result (gate report and version, if published)."""
    import keras

    from training.calibrate import scale
    from training.evaluate import write_report
    from training.export import KERAS_FILE, git_commit, publish_version
    from training.model import load_model

    settings = get_settings()
    model_dir = cfg.resolved_out()
    reporter.update(force=True, phase="loading the served model and the data")
    base_version = cfg.base_version or model_store.latest_version(model_dir)
    base_path = model_store.version_dir(model_dir, base_version)
    keras_file = base_path / model_store.EXTRA_DIR / KERAS_FILE
    if not keras_file.is_file():
        raise RetrainError(f"version {base_version} has no {KERAS_FILE} to fine-tune")
    store = FeedbackStore(settings=settings)
    x_fb, y_fb, pred_fb, fb_ids, reviews = store.training_rows()
    if len(x_fb) == 0:
        raise RetrainError(
            "there is no feedback to learn from yet: confirm or correct some predictions first"
        )
    mnist = load_mnist(cfg.data_dir or settings.mnist_dir, progress=False)
    x_pool, y_pool, real_card = replay_pool(cfg, mnist)
    n_test = min(cfg.test_limit or len(mnist.y_test), len(mnist.y_test))
    x_te, y_te = mnist.x_test[:n_test], mnist.y_test[:n_test].astype(np.int64)

    keras.utils.set_random_seed(cfg.seed)
    model = load_model(keras_file)
    head = Head(model)  # only the dense head is fitted; see training/head.py for why
    reporter.update(force=True, phase="reading the test set, the replay pool and the feedback")
    f_te, f_pool, f_fb = head.features(x_te), head.features(x_pool), head.features(x_fb)
    base_test, pool_view, fb_view = head.probs(f_te), head.view(f_pool), head.view(f_fb)
    reporter.update(force=True, phase="checking the stored labels")
    second = second_opinion(cfg, x_fb, y_fb)  # the string reader's view; its version is unchanged
    use, label_counts = check_labels(
        cfg, store, base_version, (fb_view, y_fb, fb_ids, reviews), (pool_view.unit, y_pool), second
    )
    if label_counts["held_out_suspect"] > cfg.max_suspect_share * label_counts["stored"]:
        raise RetrainError(
            f"{label_counts['held_out_suspect']} of the {label_counts['stored']} stored labels look"
            f" wrong (more than {cfg.max_suspect_share:.0%}), so nothing is learned: review the"
            " suspect ones on the Retrain page first"
        )
    if not use.any():
        raise RetrainError(
            f"all {label_counts['stored']} stored samples are held out as suspect or rejected:"
            " review them on the Retrain page"
        )
    stored = (f_fb, y_fb, fb_ids, second)  # every stored row, rescored by the new version once it is served
    x_fb, y_fb, pred_fb, f_fb = x_fb[use], y_fb[use], pred_fb[use], f_fb[use]
    base_fb = fb_view.probs[use]
    corrected = (pred_fb >= 0) & (pred_fb != y_fb)
    varied = _varied(cfg, x_fb)
    f_varied = head.features(varied.reshape(-1, 28, 28)).reshape(len(varied), *f_fb.shape)
    copies = np.concatenate([f_fb[None], f_varied])
    x_mix, t_mix = training_mix(
        cfg, (copies, y_fb), (f_pool, y_pool), pool_view, fb_view.unit[use][corrected]
    )
    if cfg.freeze_batchnorm:  # a frozen BatchNormalization layer also runs in inference mode
        for layer in head.model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    ds = _dataset(cfg, x_mix, t_mix)
    steps_per_epoch = int(ds.cardinality().numpy())
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, max(1, cfg.epochs * steps_per_epoch))
    if cfg.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    elif cfg.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=1e-4)
    else:
        raise RetrainError(f"unknown optimizer {cfg.optimizer!r} (sgd or adamw)")
    head.model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.05),
    )
    reporter.update(force=True, phase="fine-tuning")
    t_fit = time.perf_counter()
    head.model.fit(
        ds,
        epochs=cfg.epochs,
        verbose=0,
        shuffle=False,  # the dataset shuffles itself
        callbacks=[_progress_callback(reporter, cfg.epochs, steps_per_epoch)],
    )
    fit_seconds = time.perf_counter() - t_fit
    if reporter.state.get("cancelled"):
        raise CancelledError()

    reporter.update(force=True, phase="evaluating the candidate")
    cand_test = head.probs(f_te)
    cand_fb = head.probs(f_fb)
    report = gate(cfg, y_te, base_test, cand_test, y_fb, base_fb, cand_fb)
    corrections = int(corrected.sum())
    learned = (cand_fb.argmax(1) == y_fb)[corrected]
    report["corrections"] = {"n": corrections, "learned": float(learned.mean()) if corrections else 1.0}
    report["labels"] = label_counts
    base_card = model_store.read_card(model_dir, base_version)
    temperature = model_store.card_temperature(base_card)  # the parent's calibration carries over
    card: dict[str, Any] = {
        "model_name": model_dir.name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "parent_version": base_version,
        "retrain": {"config": cfg.to_dict(), "job": job_id, "gate": report},
        "config": base_card.get("config", {}),
        "data": {
            "source": mnist.source,
            "sha256": mnist.sha256,
            "counts": {
                "feedback": int(len(y_fb)),
                "corrections": corrections,
                "replay": int(len(y_pool)),
                "held_out_suspect": label_counts["held_out_suspect"],
                "accepted": label_counts["accepted"],
                "rejected": label_counts["rejected"],
            },
            "handwriting": real_card,
        },
        "timings": {"fit_seconds": round(fit_seconds, 1)},
        "files": {
            "keras": f"{model_store.EXTRA_DIR}/{KERAS_FILE}",
            "card": f"{model_store.EXTRA_DIR}/card.json",
        },
    }
    if "calibration" in base_card:
        card["calibration"] = {**base_card["calibration"], "inherited_from": base_version}
    result: dict[str, Any] = {"gate": report, "base_version": base_version, "version": None}
    reporter.update(force=True, phase="publishing" if report["passed"] else "keeping the candidate aside")
    if report["passed"]:
        if reporter.jobs is not None and job_id is not None and not reporter.jobs.holds_lock(job_id):
            raise RetrainError("this job was marked as failed meanwhile (no heartbeat); not publishing")
        result["version"] = publish_version(
            model,
            model_dir,
            card,
            temperature,
            lambda extra: write_report(extra, x_te, y_te, scale(cand_test, temperature), {}),
        )
        # The page's reasons speak for the model users now see (the trunk is unchanged, so the
        # features computed above still hold).
        scored = score_labels(
            cfg, head.view(stored[0]), stored[1], (head.view(f_pool).unit, y_pool), stored[3]
        )
        store.set_suspicion(dict(zip(stored[2], scored)), result["version"])
    else:
        aside = settings.data_dir / "candidates" / f"job-{job_id or int(time.time())}"
        aside.mkdir(parents=True, exist_ok=True)
        model.save(aside / KERAS_FILE)
        (aside / "report.json").write_text(json.dumps(card, indent=2, sort_keys=True, default=str))
        result["candidate"] = str(aside)
    result["seconds"] = round(time.monotonic() - reporter.start, 1)
    return result


def run_job(job_id: int | None, cfg: RetrainConfig, jobs: JobStore) -> int:
    """Run a job to its end and record the outcome; the exit status says how it went."""
    reporter = Reporter(jobs, job_id)
    status, result, message = "failed", {}, None
    try:
        if job_id is not None:
            jobs.attach(job_id)
            reporter.keep_alive()
            reporter.update(force=True, phase="starting")
        result = retrain(cfg, reporter, job_id)
        if result["version"] is not None:
            status, message = "published", f"published as version {result['version']}"
        else:
            status, message = (
                "rejected",
                "the candidate did not pass the gate: " + "; ".join(result["gate"]["reasons"]),
            )
    except CancelledError:
        status, message = "cancelled", "cancelled; nothing was published"
    except (RetrainError, DataError, model_store.ModelStoreError, ValueError) as exc:
        message = str(exc)
    except Exception as exc:  # noqa: BLE001 - recorded for the page; the traceback goes to the log
        traceback.print_exc()
        message = f"retraining failed ({type(exc).__name__}: {exc}); nothing was published"
    except (SystemExit, KeyboardInterrupt):  # SIGTERM or Ctrl-C: record it, then stop
        if job_id is not None:
            jobs.finish(job_id, "cancelled", result, "stopped by a signal; nothing was published")
        raise
    reporter.stop()
    if job_id is not None:
        jobs.finish(job_id, status, result, message)
    print(f"{status}: {message}", flush=True)
    return 0 if status in {"published", "rejected"} else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.retrain",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--job", type=int, default=None, help="Run this job (started by the app) and report to it."
    )
    add_config_arguments(parser, RetrainConfig)
    args = parser.parse_args(argv)
    jobs = JobStore()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # runs `finally` blocks, unlike the default
    if args.job is not None:
        job = jobs.get(args.job)
        if job is None:
            print(f"error: no job {args.job}", file=sys.stderr)
            return 2
        cfg = RetrainConfig.from_dict(job.config)
        return run_job(job.id, cfg, jobs)
    defaults = RetrainConfig().to_dict()
    given = {k: v for k, v in vars(args).items() if k != "job" and v is not None and v != defaults.get(k)}
    cfg = RetrainConfig.from_dict(retrain_config_dict(given))
    try:
        job = jobs.create(cfg.to_dict())
    except JobBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return run_job(job.id, cfg, jobs)
    except KeyboardInterrupt:
        jobs.finish(job.id, "cancelled", message="interrupted from the keyboard; nothing was published")
        print("interrupted: nothing was published", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

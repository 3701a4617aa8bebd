"""Train the CNN on MNIST and publish it as a new numbered version in the model store.

    python -m training.train                  # the shipped model (default config)
    python -m training.train --epochs 1 --limit 2000 --out /tmp/store/mnist_cnn   # smoke run
    TF_CONFIG=... python -m training.train --distributed   # one worker of a cluster (see README)

The model is selected on a stratified validation split carved from the 60k training
images; the 10k test set is used only once, for the final report in the model card.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training.config import TrainConfig, add_config_arguments, config_from_args  # noqa: E402
from training.data import DataError, Mnist, held_out, load_mnist  # noqa: E402

TARGET_VAL_ACCURACY = 0.995  # reported as "time to 99.5%"


def _strategy(cfg: TrainConfig) -> Any:
    import tensorflow as tf

    if cfg.distributed:
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief() -> bool:
    """Only the chief (or worker 0 when there is no chief) publishes the model."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = tf_config.get("task", {})
    cluster = tf_config.get("cluster", {})
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return "chief" not in cluster and task.get("type") == "worker" and int(task.get("index", 0)) == 0


class SelectionCallback:
    """Keeps the weights of the best validation epoch and the timings the card reports."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # built lazily so importing is TF-free
        import keras

        class _Callback(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.best_acc = -1.0
                self.best_epoch = 0
                self.best_weights: list | None = None
                self.start = 0.0
                self.epoch_seconds: list[float] = []
                self.time_to_target: float | None = None

            def on_train_begin(self, logs: dict | None = None) -> None:
                if not self.start:  # fit() may be called again for the settle epochs
                    self.start = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                logs = logs or {}
                elapsed = time.perf_counter() - self.start
                self.epoch_seconds.append(elapsed)
                acc = float(logs.get("val_accuracy", 0.0))
                if acc >= TARGET_VAL_ACCURACY and self.time_to_target is None:
                    self.time_to_target = elapsed
                if acc > self.best_acc:
                    self.best_acc, self.best_epoch = acc, epoch + 1
                    self.best_weights = self.model.get_weights()
                print(
                    f"epoch {epoch + 1}: val_accuracy {acc:.4%} (best {self.best_acc:.4%} @ {self.best_epoch}),"
                    f" elapsed {elapsed:.0f}s",
                    flush=True,
                )

        return _Callback()


def load_handwriting(cfg: TrainConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """The train splits of every real set with a share; the ones missing only with --allow-missing."""
    from training.handwriting import TRAIN_SETS, load_sets

    wanted = [name for name in TRAIN_SETS if getattr(cfg, f"{name}_share") > 0]
    return load_sets(wanted, cfg.handwriting_dir, cfg.allow_missing, progress=sys.stderr.isatty())


def make_datasets(cfg: TrainConfig, mnist: Mnist, sets: dict[str, Any]) -> dict[str, Any]:
    """Split, subsample (--limit), render the real handwriting and wrap it all in tf.data pipelines."""
    from training.augment import augment_batch, european_variant_sets, light_augment_batch
    from training.mixing import Source, Validation, dataset, real_sources

    train_idx, val_idx, test_idx = held_out(
        mnist.y_train, len(mnist.x_test), cfg.val_fraction, cfg.seed, cfg.limit
    )
    x_tr, y_tr = mnist.x_train[train_idx], mnist.y_train[train_idx]
    join = min(1.0, cfg.join_prob / cfg.variant_prob) if cfg.variant_prob > 0 else 0.0
    variants = european_variant_sets(x_tr, y_tr, cfg.seed, cfg.long_flag_deg, cfg.variant_copies, join)
    # Column 0 the MNIST digit, then its European variants (1s and 7s differ, other digits repeat).
    sources = [
        Source("mnist", np.concatenate([x_tr[:, None], variants], 1), y_tr, cfg.variant_prob, cfg.mnist_share)
    ]
    val = Validation()
    val.add("mnist", mnist.x_train[val_idx], mnist.y_train[val_idx])
    real, real_card = real_sources(cfg, sets, val)
    sources += real
    used = [s for s in sources if s.share > 0]
    steps = max(1, min(cfg.epoch_size, sum(len(s.labels) for s in used)) // cfg.batch_size)

    def pipeline(augment: Any) -> Any:
        import tensorflow as tf

        return (
            dataset(sources, cfg.batch_size, cfg.seed)
            .take(steps)
            .map(lambda x, y: (augment(x, cfg), y), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )

    x_val, y_val, val_names = val.arrays()
    import tensorflow as tf

    return {
        "train": pipeline(augment_batch),
        "settle": pipeline(light_augment_batch),
        "val": tf.data.Dataset.from_tensor_slices((x_val, y_val.astype(np.int32))).batch(512),
        "x_val": x_val,
        "y_val": y_val,
        "val_names": val_names,
        "x_test": mnist.x_test[test_idx],
        "y_test": mnist.y_test[test_idx],
        "counts": {
            "train": len(x_tr),
            "val": int((val_names == "mnist").sum()),
            "test": len(test_idx),
            "real_train": int(sum(len(s.labels) for s in real)),
            "real_val": int((val_names != "mnist").sum()),
            "steps_per_epoch": steps,
        },
        "handwriting": real_card,
        "shares": {s.name: s.share / sum(u.share for u in used) for s in used},
    }


def per_source_accuracy(probs: np.ndarray, labels: np.ndarray, names: np.ndarray) -> dict[str, float]:
    """Validation accuracy of each data set alone: a pooled figure hides a set the model fails."""
    right = probs.argmax(axis=1) == labels
    return {str(n): round(float(right[names == n].mean()), 5) for n in dict.fromkeys(names.tolist())}


def compile_model(model: Any, cfg: TrainConfig, steps: int, steps_per_epoch: int) -> None:
    """AdamW with a warm-up then cosine decay (one cycle), label-smoothed cross-entropy."""
    import keras

    warmup = max(1, int(steps * cfg.warmup_fraction))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.learning_rate / 20,
        decay_steps=max(1, steps - warmup),
        alpha=0.002,
        warmup_target=cfg.learning_rate,
        warmup_steps=warmup,
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=schedule,
            weight_decay=cfg.weight_decay,
            # Validate and export the moving average of the weights: smoother, a little more accurate.
            use_ema=cfg.ema_momentum > 0,
            ema_momentum=cfg.ema_momentum or 0.99,
            ema_overwrite_frequency=steps_per_epoch,
        ),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"],
    )


def train(cfg: TrainConfig, verbose: int | None = None) -> dict[str, Any]:
    """The whole run: data, fit, select, evaluate, export, publish. Returns the model card."""
    import keras
    import tensorflow as tf

    from training import distributed
    from training.calibrate import fit_temperature, report, scale
    from training.evaluate import write_report
    from training.export import git_commit, publish_version
    from training.model import build_model

    t0 = time.perf_counter()
    strategy = _strategy(cfg)  # first: collective ops must be configured before any other TF op
    commit = git_commit()  # at the start: the code this run trains with
    keras.utils.set_random_seed(cfg.seed)
    mnist = load_mnist(cfg.data_dir)
    sets, missing = load_handwriting(cfg)
    data = make_datasets(cfg, mnist, sets)
    onehot = lambda x, y: (x, tf.one_hot(y, 10))  # noqa: E731 (label smoothing needs one-hot)
    train_ds, val_ds = data["train"].map(onehot), data["val"].map(onehot)
    settle_ds = data["settle"].map(onehot)
    settle = min(max(cfg.settle_epochs, 0), cfg.epochs - 1)
    steps_per_epoch = int(train_ds.cardinality().numpy())
    steps = steps_per_epoch * cfg.epochs

    with strategy.scope():
        with distributed.averaged_statistics() if cfg.distributed else contextlib.nullcontext():
            model = build_model(cfg)
        compile_model(model, cfg, steps, steps_per_epoch)
    selection = SelectionCallback()
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    t_fit = time.perf_counter()
    if cfg.distributed:  # Keras 3's fit() cannot run under MultiWorkerMirroredStrategy
        history = distributed.fit(
            model,
            strategy,
            cfg,
            [(train_ds, cfg.epochs - settle), (settle_ds, settle)],
            val_ds,
            global_batch_size=cfg.batch_size,
            selection=selection,
            verbose=verbose,
        )
    else:
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=cfg.epochs - settle,
            verbose=verbose,
            callbacks=[selection],
            shuffle=False,
        ).history
        if settle:  # same optimizer and schedule, continued on lightly augmented batches
            tail = model.fit(
                settle_ds,
                validation_data=val_ds,
                initial_epoch=cfg.epochs - settle,
                epochs=cfg.epochs,
                verbose=verbose,
                callbacks=[selection],
                shuffle=False,
            )
            for key, values in tail.history.items():
                history.setdefault(key, []).extend(values)
    fit_seconds = time.perf_counter() - t_fit
    if selection.best_weights is not None:
        model.set_weights(selection.best_weights)

    x_te = data["x_test"].astype(np.float32)[..., None] / 255.0
    x_val, y_val = data["x_val"], data["y_val"]
    if cfg.distributed:
        probs = distributed.predict(model, x_te, batch_size=1024)
        val_probs = distributed.predict(model, x_val, batch_size=1024)
    else:
        probs = model.predict(x_te, batch_size=1024, verbose=0)
        val_probs = model.predict(x_val, batch_size=1024, verbose=0)
    # Honest probabilities: one temperature, fitted on the held-out validation images.
    if len(y_val):
        temperature = fit_temperature(val_probs, y_val)
        calibration = report(
            val_probs, y_val, temperature, "validation split: " + ", ".join(dict.fromkeys(data["val_names"]))
        )
    else:
        temperature, calibration = 1.0, {"temperature": 1.0, "fitted_on": "nothing (no validation split)"}
    probs = scale(probs, temperature)
    card: dict[str, Any] = {
        "model_name": cfg.resolved_out().name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "config": cfg.to_dict(),
        "data": {
            "source": mnist.source,
            "sha256": mnist.sha256,
            "counts": data["counts"],
            "shares": data["shares"],
            "handwriting": data["handwriting"],
            "missing": missing,
        },
        "signature": {
            "name": "serving_default",
            "inputs": {"image": "float32 [None, 28, 28, 1], 0..1, white on black"},
            "outputs": {"probabilities": "float32 [None, 10]"},
        },
        "validation": {
            "best_accuracy": selection.best_acc,
            "best_epoch": selection.best_epoch,
            "by_source": per_source_accuracy(val_probs, y_val, data["val_names"]),
        },
        "calibration": calibration,
        "history": {k: [float(v) for v in vals] for k, vals in history.items()},
        "timings": {
            "fit_seconds": round(fit_seconds, 1),
            "epoch_end_seconds": [round(s, 1) for s in selection.epoch_seconds],
            "time_to_val_99_5_seconds": (
                None if selection.time_to_target is None else round(selection.time_to_target, 1)
            ),
        },
        "environment": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        },
        "files": {"keras": "assets.extra/model.keras", "card": "assets.extra/card.json"},
    }
    if not is_chief():
        print("not the chief worker: training done, the chief publishes the model", flush=True)
        if cfg.distributed:
            distributed.barrier(strategy)  # stay in the cluster until the chief is done
        return card

    def test_report(extra: Path) -> dict[str, Any]:
        test = write_report(extra, data["x_test"], data["y_test"], probs, card["history"])
        card["timings"]["total_seconds"] = round(time.perf_counter() - t0, 1)  # export included
        return test

    try:
        card["version"] = publish_version(model, cfg.resolved_out(), card, temperature, test_report)
    finally:
        if cfg.distributed:
            distributed.barrier(strategy)  # published or failed: release the other workers
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_config_arguments(parser)
    cfg = config_from_args(parser.parse_args(argv))
    try:
        card = train(cfg)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing was published", file=sys.stderr)
        return 130
    if "version" in card:
        test = card["test"]
        print(
            f"published {cfg.resolved_out()}/{card['version']}: test accuracy {test['accuracy']:.4%}, "
            f"macro F1 {test['macro']['f1']:.4f}, val {card['validation']['best_accuracy']:.4%} "
            f"(epoch {card['validation']['best_epoch']}), total {card['timings']['total_seconds']:.0f}s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

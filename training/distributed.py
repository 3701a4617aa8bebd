"""The training loop of `--distributed` runs (tf.distribute.MultiWorkerMirroredStrategy, TF_CONFIG).

Keras 3's `model.fit` does not support MultiWorkerMirroredStrategy (keras-team/keras#20585:
the per-replica batches reach the model as `PerReplica` values). So distributed runs train
with a small custom loop instead, on the same tf.data pipelines, optimizer, loss and
schedule, and report the same per-epoch history and best-epoch selection as `fit()`.

Every worker runs every step (each step is a collective: gradients and batch-norm
statistics are all-reduced) and validates on the whole validation split locally; the
weights are identical on all workers, so every worker picks the same best epoch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from training.config import TrainConfig

IMAGE_SPEC = tf.TensorSpec([None, 28, 28, 1], tf.float32)


@contextlib.contextmanager
def averaged_statistics() -> Iterator[None]:
    """Build the model inside this (and strategy.scope()): running statistics are averaged over workers.

    Keras 3 creates batch norm's moving mean/variance with aggregation NONE. Updated in
    replica context, a mirrored variable with NONE only changes the local copy, so each
    worker would keep the statistics of its own shard and the workers' models would drift
    apart. With MEAN every update is all-reduced and all copies stay equal.
    """

    def creator(next_creator: Any, **kwargs: Any) -> Any:
        dtype = kwargs.get("dtype")
        if kwargs.get("trainable") is False and dtype is not None and tf.as_dtype(dtype).is_floating:
            kwargs["aggregation"] = tf.VariableAggregation.MEAN
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        yield


def _predict_fn(model: keras.Model) -> Any:
    """Inference on this worker only (no collectives): the mirrored weights are read locally."""
    return tf.function(lambda x: model(x, training=False), input_signature=[IMAGE_SPEC])


def predict(model: keras.Model, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """model.predict without the strategy (Keras would distribute it and fail like fit does)."""
    fn = _predict_fn(model)
    return np.concatenate([fn(images[i : i + batch_size]).numpy() for i in range(0, len(images), batch_size)])


def fit(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    cfg: TrainConfig,
    phases: list[tuple[tf.data.Dataset, int]],
    val_ds: tf.data.Dataset,
    global_batch_size: int,
    selection: Any,
    verbose: int = 0,
) -> dict[str, list[float]]:
    """Train `epochs` epochs on each (dataset, epochs) phase in turn; returns fit()'s history dict.

    `model` must be compiled in strategy.scope() (its optimizer and schedule are used); the
    datasets yield (image, one-hot label) batches of `global_batch_size` images.
    """
    _own_dropout_masks(model, strategy)
    optimizer = model.optimizer
    with strategy.scope():  # its variables must be mirrored, and cannot be created inside a step
        optimizer.build(model.trainable_variables)
    # Keras overwrites the weights with their moving average (EMA) inside a step, in a cond:
    # a merge_call there fails under strategy.run. So it is done here between steps instead.
    ema_every, optimizer.ema_overwrite_frequency = optimizer.ema_overwrite_frequency, None
    per_example_loss = keras.losses.CategoricalCrossentropy(
        label_smoothing=cfg.label_smoothing, reduction=None
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

    def step_fn(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            losses = per_example_loss(y, probs)
            loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch_size)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))  # all-reduces (sums) the grads
        correct = tf.reduce_sum(tf.cast(tf.argmax(y, -1) == tf.argmax(probs, -1), tf.float32))
        return tf.stack([tf.reduce_sum(losses), correct, tf.cast(tf.shape(y)[0], tf.float32)])

    @tf.function
    def train_step(batch: Any) -> tf.Tensor:
        """One global step; returns [loss sum, correct, images] over all workers."""
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(step_fn, args=batch), axis=None)

    predict_fn = _predict_fn(model)
    history: dict[str, list[float]] = {}
    selection.set_model(model)
    epoch = 0
    for ds, epochs in phases:
        if epochs <= 0:
            continue
        steps = int(ds.cardinality().numpy())  # equal on every worker: each global batch is split
        dist_ds = strategy.experimental_distribute_dataset(ds.with_options(options))
        selection.on_train_begin()
        for _ in range(epochs):
            t = time.perf_counter()
            batches = iter(dist_ds)  # a new iterator per epoch, so the data is reshuffled as in fit()
            totals = sum(train_step(next(batches)).numpy() for _ in range(steps))
            if optimizer.use_ema and ema_every and optimizer.iterations.numpy() % ema_every == 0:
                optimizer.finalize_variable_values(model.trainable_variables)
            logs = {
                "loss": totals[0] / totals[2],
                "accuracy": totals[1] / totals[2],
                **_evaluate(predict_fn, per_example_loss, val_ds),
            }
            for key, value in logs.items():
                history.setdefault(key, []).append(float(value))
            if verbose:
                print(
                    f"epoch {epoch + 1}/{cfg.epochs}: {steps} steps, {time.perf_counter() - t:.0f}s, "
                    + ", ".join(f"{k} {v:.4f}" for k, v in logs.items()),
                    flush=True,
                )
            selection.on_epoch_end(epoch, logs)
            epoch += 1
        optimizer.finalize_variable_values(model.trainable_variables)  # as fit() does (EMA)
    optimizer.ema_overwrite_frequency = ema_every  # as configured, in the saved model.keras
    return history


def _own_dropout_masks(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Offset the dropout seeds by the worker's index.

    The strategy starts every variable from worker 0's value, the dropout layers' seed state
    too: without this, all workers would drop the same units for the images at the same
    position of their shards.
    """
    index = strategy.cluster_resolver.task_id or 0
    for variable in model.non_trainable_variables:
        if variable.name == "seed_generator_state":
            variable.assign(variable.numpy() + np.array([index, 0], variable.numpy().dtype))


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Wait until every worker gets here (a one-number all-reduce).

    Called at the end of a run so that no worker exits while the chief still publishes: the
    cluster's coordination service (hosted by the chief) reports a worker that has left as crashed.
    """

    def one() -> tf.Tensor:
        return tf.ones([])

    @tf.function
    def all_reduce() -> tf.Tensor:
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(one), axis=None)

    all_reduce()


def _evaluate(predict_fn: Any, loss: Any, val_ds: tf.data.Dataset) -> dict[str, float]:
    """val_loss (the training loss) and val_accuracy over the whole validation set, as fit() reports them."""
    total = correct = count = 0.0
    for x, y in val_ds:
        probs = predict_fn(x)
        total += float(tf.reduce_sum(loss(y, probs)))
        correct += float(tf.reduce_sum(tf.cast(tf.argmax(y, -1) == tf.argmax(probs, -1), tf.float32)))
        count += int(y.shape[0])
    return {"val_loss": total / count, "val_accuracy": correct / count}

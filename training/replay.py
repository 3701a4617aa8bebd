"""What a fine-tuning replays beside the users' corrections, so it forgets nothing it knew.

In: the retraining config, MNIST, the served model and the corrections. Out: one epoch's
images and target distributions: a sample of MNIST's training images and of the real
handwriting train splits found on this machine (the same digits the served model learned
from), the corrections oversampled up to their share, and the replayed images nearest to each
correction in the served model's features.

Why: a correction moves the decision boundary. Replaying only MNIST protects MNIST but lets
the boundary swallow the real writers' digits the served model reads right (a flagged 1
learned as a 1 can take crossed 7s with it). Replaying real handwriting too, and the digits
nearest each correction, keeps the boundary where the served version put it everywhere else.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from digit_app.config import get_settings
from training.handwriting import TRAIN_SETS, load_sets
from training.mixing import train_samples
from training.render import render


def real_pool(
    count: int, root: Any, seed: int, cache: Any = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(uint8 images, labels, card entry): `count` random train-split digits of the real sets on
    this machine (never downloaded here: retraining must not wait on the network), plain copies."""
    if count <= 0:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8), {"sets": [], "count": 0}
    sets, missing = load_sets(TRAIN_SETS, root, allow_missing=True, progress=False, download=False)
    samples = [s for data in sets.values() for s in train_samples(data)]
    if not samples:
        return (
            np.zeros((0, 28, 28), np.uint8),
            np.zeros(0, np.uint8),
            {"sets": [], "count": 0, "missing": missing},
        )
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(samples), min(count, len(samples)), replace=False))
    r = render([samples[i] for i in pick], 1, seed, cache=cache)
    return (
        r.images[:, 0],
        r.labels,
        {"sets": sorted(sets), "count": int(len(r.labels)), "missing": sorted(missing)},
    )


def replay_pool(cfg: Any, mnist: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """What a retraining may replay, and checks stored labels against: `cfg.replay` images,
    `cfg.real_replay` of them real train-split handwriting (when on this machine), the rest MNIST's
    training images; uint8 (N, 28, 28), labels, and the real part's card entry."""
    settings = get_settings()
    x_real, y_real, card = real_pool(
        cfg.real_replay,
        cfg.handwriting_dir or settings.handwriting_dir,
        cfg.seed,
        settings.cache_dir / "rendered",
    )
    part = np.random.default_rng(cfg.seed).permutation(len(mnist.y_train))[: max(0, cfg.replay - len(y_real))]
    return (
        np.concatenate([mnist.x_train[part], x_real]),
        np.concatenate([mnist.y_train[part], y_real]),
        card,
    )


def teacher_view(model: Any, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The features the model classifies from (the input of its last layer, unit length) and
    its probabilities, from one pass over the images."""
    import keras

    if len(images) == 0:
        return np.zeros((0, 1), np.float32), np.zeros((0, 10), np.float32)
    view = keras.Model(model.inputs, [model.layers[-1].input, model.outputs[0]])
    features, probs = predict(view, images)
    features = features.reshape(len(images), -1)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-9), probs


def nearest_images(anchors: np.ndarray, pool: np.ndarray, k: int) -> np.ndarray:
    """Indices into `pool` of the k rows most similar (cosine) to each anchor row; each index once."""
    if len(anchors) == 0 or len(pool) == 0 or k <= 0:
        return np.zeros(0, np.int64)
    k = min(k, len(pool))
    found = []
    for start in range(0, len(anchors), 256):  # bounded memory: 256 x len(pool) similarities at a time
        sims = anchors[start : start + 256] @ pool.T
        found.append(np.argpartition(-sims, k - 1, axis=1)[:, :k].ravel())
    return np.unique(np.concatenate(found))


def predict(model: Any, x: np.ndarray) -> Any:
    """The model's outputs for uint8 or 0..1 images (N, 28, 28)."""
    x = x.astype(np.float32)
    if x.max(initial=0) > 1.5:
        x = x / 255.0
    return model.predict(x[..., None], batch_size=1024, verbose=0)


def training_mix(
    cfg: Any,
    x_fb: np.ndarray,
    y_fb: np.ndarray,
    x_pool: np.ndarray,
    y_pool: np.ndarray,
    teacher: Any = None,
    corrected: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's worth: the replay sample plus the feedback repeated up to its share.

    `x_pool` holds what may be replayed (MNIST's training images and real handwriting, uint8).
    Targets are probability vectors: one-hot for the feedback; for the replayed images a blend
    of the label and the served model's own answer (`distill`), which keeps the fine-tuned
    model's behaviour close to the served one (learning without forgetting). With
    `neighbours`, the pool images that look most like each correction (`corrected` marks them)
    are replayed as often as it is, so the boundary moves between them, not over them.
    """
    rng = np.random.default_rng(cfg.seed)
    replay = rng.choice(len(x_pool), size=min(cfg.replay, len(x_pool)), replace=False)
    share = min(max(cfg.feedback_share, 0.0), 0.9)
    n_fb = max(len(x_fb), int(round(len(replay) * share / max(1e-9, 1.0 - share))))
    fb_idx = np.resize(rng.permutation(len(x_fb)), n_fb)
    pool_probs = None
    if teacher is not None and cfg.neighbours > 0:
        # Searched among the replay sample only: its features serve the distillation too, and a
        # pass over all 60,000 MNIST images took a quarter of a retraining's time.
        features, pool_probs = teacher_view(teacher, x_pool[replay])
        anchors = x_fb if corrected is None else x_fb[corrected]
        near = replay[nearest_images(teacher_view(teacher, anchors)[0], features, cfg.neighbours)]
        if len(near):
            repeats = max(1, int(round(n_fb / len(x_fb))))
            extra = np.tile(near, repeats)
            order = {j: i for i, j in enumerate(replay)}
            pool_probs = np.concatenate([pool_probs, pool_probs[[order[j] for j in extra]]])
            replay = np.concatenate([replay, extra])
    x_replay = x_pool[replay].astype(np.float32) / 255.0
    t_replay = np.eye(10, dtype=np.float32)[y_pool[replay]]
    if teacher is not None and cfg.distill > 0:
        answers = pool_probs if pool_probs is not None else predict(teacher, x_replay)
        t_replay = (1 - cfg.distill) * t_replay + cfg.distill * answers
    x = np.concatenate([x_replay, x_fb[fb_idx]])
    t = np.concatenate([t_replay, np.eye(10, dtype=np.float32)[y_fb[fb_idx]]])
    return x, t

"""What a fine-tuning replays beside the users' corrections, so it forgets nothing it knew.

In: the retraining config, MNIST, and the served model's view (`training.head`) of the replay
pool and of the corrections. Out: the pool itself, and one epoch's trunk features and target
distributions: a sample of MNIST's training images and of the real
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
from training.head import Head, View
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


def teacher_view(model: Any, images: np.ndarray) -> View:
    """The features the model classifies from (the input of its last layer, unit length) and
    its probabilities, from one pass over the images."""
    head = Head(model)
    return head.view(head.features(images))


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
    fb: tuple[np.ndarray, np.ndarray],
    pool: tuple[np.ndarray, np.ndarray],
    pool_view: View | None = None,
    anchors: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's worth of trunk features (`training.head`) and target distributions: the
    replay sample plus the feedback repeated up to its share.

    `fb` is (features of each feedback image's copies, shaped (copies, N, D), labels (N,));
    `pool` is (features, labels) of what may be replayed (MNIST's training images and real
    handwriting). With `pool_view` (the served model's view of the pool), the replayed targets
    blend the label and the served model's own answer (`distill`), which keeps the fine-tuned
    model's behaviour close to the served one (learning without forgetting). With `anchors`
    (the served model's unit features of the corrections) and `neighbours`, the pool images
    that look most like each correction are replayed as often as it is, so the boundary moves
    between them, not over them.
    """
    fb_features, y_fb = fb
    pool_features, y_pool = pool
    copies, n = fb_features.shape[:2]
    rng = np.random.default_rng(cfg.seed)
    replay = rng.choice(len(y_pool), size=min(cfg.replay, len(y_pool)), replace=False)
    share = min(max(cfg.feedback_share, 0.0), 0.9)
    n_fb = max(copies * n, int(round(len(replay) * share / max(1e-9, 1.0 - share))))
    fb_idx = np.resize(rng.permutation(copies * n), n_fb)
    if pool_view is not None and anchors is not None and cfg.neighbours > 0:
        near = replay[nearest_images(anchors, pool_view.unit[replay], cfg.neighbours)]
        replay = np.concatenate([replay, np.tile(near, max(1, int(round(n_fb / max(n, 1)))))])
    t_replay = np.eye(10, dtype=np.float32)[y_pool[replay]]
    if pool_view is not None and cfg.distill > 0:
        t_replay = (1 - cfg.distill) * t_replay + cfg.distill * pool_view.probs[replay]
    x = np.concatenate([pool_features[replay], fb_features.reshape(copies * n, -1)[fb_idx]])
    t = np.concatenate([t_replay, np.eye(10, dtype=np.float32)[np.tile(y_fb, copies)[fb_idx]]])
    return x, t

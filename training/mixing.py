"""The training mix: MNIST and the train splits of real handwriting, each a share of every batch.

In: the training config, MNIST's split, and the loaded real-handwriting sets (train splits only).
Out: one `Source` per data set for the tf.data pipeline, the validation images (MNIST's held-out
slice plus every sample of the validation writers), and the data section of the model card.

Why: the app is judged on writers it has never seen, so the checkpoint, the temperature and any
threshold must be chosen on writers the model did not learn from. Each real set that names its
writers gives a few of them (by a hash of their id, so the choice is stable) to validation and
none of their samples to training; sets without writer ids (optdigits, mfeat) only train. Dev
splits never get here: `load_sets` reads train splits, and `train_samples` refuses anything else.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from digit_app.config import get_settings
from training.handwriting import TRAIN, UNKNOWN_WRITER, HandwritingSet, Sample, spec
from training.render import render


@dataclass
class Source:
    """One data set's training images, and how often a batch draws from it."""

    name: str
    images: np.ndarray  # (N, K, 28, 28) uint8: column 0 the plain image, the others its variants
    labels: np.ndarray  # (N,) uint8
    variant_prob: float  # chance that a variant (column 1..K-1) is used instead of column 0
    share: float  # of every batch, before normalising over the sources at hand


@dataclass
class Validation:
    """Images the checkpoint and the temperature are chosen on, with the set each came from."""

    images: list[np.ndarray] = field(default_factory=list)  # (n, 28, 28) uint8 each
    labels: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def add(self, name: str, images: np.ndarray, labels: np.ndarray) -> None:
        self.images.append(images)
        self.labels.append(labels)
        self.names += [name] * len(labels)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(images float32 (n, 28, 28, 1) in 0..1, labels, source names)."""
        x = np.concatenate(self.images).astype(np.float32)[..., None] / 255.0
        return x, np.concatenate(self.labels), np.array(self.names)


def validation_writers(writers: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The writers held out for validation: the lowest hashes of (seed, writer), at least one
    when the set has three writers or more, none of the writers without an id."""
    known = sorted({w for w in writers if w != UNKNOWN_WRITER})
    if len(known) < 3 or fraction <= 0:
        return set()
    ranked = sorted(known, key=lambda w: hashlib.sha256(f"{seed}:{w}".encode()).hexdigest())
    return set(ranked[: max(1, math.ceil(fraction * len(known)))])


def split_by_writer(
    samples: Sequence[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample], set[str]]:
    """(training samples, validation samples, validation writers): no writer in both."""
    held = validation_writers([s.writer for s in samples], fraction, seed)
    return [s for s in samples if s.writer not in held], [s for s in samples if s.writer in held], held


def train_samples(data: HandwritingSet, keep_suspect: bool = False) -> list[Sample]:
    """The samples a model may learn from; anything outside a train split is an error, not a filter."""
    stray = [s.ident for s in data.samples if s.split != TRAIN]
    if stray:
        raise ValueError(f"{data.name}: {len(stray)} samples outside the train split (e.g. {stray[0]})")
    return [s for s in data.samples if keep_suspect or s.suspect is None]


def real_sources(
    cfg: Any, sets: dict[str, HandwritingSet], val: Validation
) -> tuple[list[Source], dict[str, Any]]:
    """Render each set's train samples; validation writers' samples go to `val` (plain copy only)."""
    sources, card = [], {}
    cache = get_settings().cache_dir / "rendered" if cfg.cache_renders else None
    for name, data in sets.items():
        samples = train_samples(data)
        if cfg.limit:
            samples = samples[: cfg.limit]
        train, held_out, held = split_by_writer(samples, cfg.val_writer_fraction, cfg.seed)
        copies = cfg.pen_copies if spec(name).kind == "pen" else 1
        r = render(train, copies, cfg.seed, desc=f"{name} ({len(train)} digits)", cache=cache)
        sources.append(
            Source(name, r.images, r.labels, (copies - 1) / copies, float(getattr(cfg, f"{name}_share")))
        )
        v = render(held_out, 1, cfg.seed, desc=f"{name} validation", cache=cache)
        if len(v.labels):
            val.add(name, v.images[:, 0], v.labels)
        s = spec(name)
        card[name] = {
            "files": data.files,
            "source": data.source,
            "licence": s.licence,
            "citation": s.citation,
            "train_samples": len(r.labels),
            "train_writers": len({w for w in r.writers if w != UNKNOWN_WRITER}),
            "val_samples": len(v.labels),
            "val_writers": sorted(held),
            "left_out": {
                "suspect": len(data.samples) - len(train_samples(data)),
                "no_digit_found": r.dropped,
            },
            "copies": copies,
            "share": getattr(cfg, f"{name}_share"),
        }
    return sources, card


def dataset(sources: Sequence[Source], batch_size: int, seed: int) -> Any:
    """An endless tf.data stream of (uint8 image, label) batches: each element drawn from a source
    with probability proportional to its share, then its plain image or a random variant."""
    import tensorflow as tf

    def stream(i: int, s: Source) -> Any:
        k = s.images.shape[1]

        @tf.autograph.experimental.do_not_convert  # plain tensor ops; nothing for autograph to rewrite
        def pick(images: Any, label: Any) -> Any:
            use = tf.random.uniform([]) < s.variant_prob
            j = tf.random.uniform([], 1, max(k, 2), dtype=tf.int32) if k > 1 else 0
            return tf.where(use, images[j], images[0]), label

        return (
            tf.data.Dataset.from_tensor_slices((s.images, s.labels.astype(np.int32)))
            .repeat()
            .shuffle(min(len(s.labels), 20000), seed=seed + i, reshuffle_each_iteration=True)
            .map(pick, num_parallel_calls=tf.data.AUTOTUNE)
        )

    used = [s for s in sources if s.share > 0 and len(s.labels)]
    total = sum(s.share for s in used)
    mixed = tf.data.Dataset.sample_from_datasets(
        [stream(i, s) for i, s in enumerate(used)], weights=[s.share / total for s in used], seed=seed
    )
    return mixed.batch(batch_size, drop_remainder=True)

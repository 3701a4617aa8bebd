"""The one training configuration; every field is also a command-line flag."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

# `_opt` and `_as_dict` are the helpers of every config dataclass, shared with the retraining
# job's settings (`digit_app.config.RetrainConfig`), which the app reads too.
from digit_app.config import as_dict as _as_dict
from digit_app.config import get_settings
from digit_app.config import option as _opt


@dataclass
class TrainConfig:
    """Hyper-parameters and paths of one training run (written into the model card)."""

    # --- run ---
    epochs: int = _opt(15, "Passes over the training split (including the settle epochs).")
    settle_epochs: int = _opt(
        2, "Last epochs trained with light augmentation only, so the model settles on clean digits."
    )
    batch_size: int = _opt(128, "Images per gradient step.")
    seed: int = _opt(42, "Seed for the split, weights, shuffling and augmentation.")
    limit: int | None = _opt(
        None, "Train on only this many images per data set (smoke runs); also caps validation/test."
    )
    val_fraction: float = _opt(
        0.1, "Share of MNIST's 60k training images held out (stratified) for model selection."
    )
    data_dir: Path | None = _opt(
        None, "Folder with the MNIST IDX files (default: $MNIST_DIR, cache, download)."
    )
    out: Path | None = _opt(None, "Model folder to publish into (default: <model_store>/<model_name>).")
    # --- real handwriting (train splits only; see training/handwriting.py) ---
    handwriting_dir: Path | None = _opt(
        None,
        "Folder with the real-handwriting sets (default: $HANDWRITING_DIR, then the user cache, where"
        " the sets with a public home are downloaded).",
    )
    allow_missing: bool = _opt(
        False, "Train on the sets that can be had when some are missing (the card lists what was used)."
    )
    epoch_size: int = _opt(
        60000, "Images per epoch, drawn from the sources below in proportion to their shares."
    )
    mnist_share: float = _opt(0.5, "Share of every batch drawn from MNIST's training split.")
    pendigits_share: float = _opt(0.1, "Share drawn from pendigits' train writers (tablet pen trajectories).")
    unipen_share: float = _opt(
        0.25, "Share drawn from UNIPEN's train writers (pen trajectories, 17 sources)."
    )
    scans_share: float = _opt(0.05, "Share drawn from the scanned Swiss digits' train writers.")
    optdigits_share: float = _opt(
        0.05, "Share drawn from optdigits' training file (NIST forms, 32x32 bitmaps)."
    )
    mfeat_share: float = _opt(0.05, "Share drawn from mfeat (Dutch utility-map numerals, 15x16).")
    pen_copies: int = _opt(
        4,
        "Ways each pen trajectory is drawn: the plain Draw-page rendering, varied ones (turned, slanted,"
        " resampled, trembling, other pens) and, from 3 copies, a bold-pen screenshot; one is picked each time.",
    )
    cache_renders: bool = _opt(
        True,
        "Keep the rendered real-handwriting images in the user cache: the next run with the same data,"
        " settings and code skips rendering.",
    )
    val_writer_fraction: float = _opt(
        0.1, "Share of each real set's writers held out (with all their digits) to choose the checkpoint on."
    )
    # --- model ---
    width: int = _opt(32, "Filters of the first convolution block (doubled in each later block).")
    dense_units: int = _opt(128, "Units of the hidden dense layer.")
    dropout: float = _opt(0.4, "Dropout before the classifier.")
    deskew: bool = _opt(
        False,
        "Straighten each digit's slant (a shear from its image moments) inside the network, so"
        " training, the app and TensorFlow Serving all see upright digits.",
    )
    # --- optimisation ---
    learning_rate: float = _opt(3e-3, "Peak learning rate of the one-cycle schedule (AdamW).")
    weight_decay: float = _opt(1e-4, "Decoupled weight decay of AdamW.")
    warmup_fraction: float = _opt(0.15, "Share of the steps spent warming the learning rate up.")
    label_smoothing: float = _opt(0.05, "Label smoothing of the cross-entropy.")
    ema_momentum: float = _opt(0.0, "Momentum of a weight moving average to validate and export (0 = off).")
    # --- augmentation (applied on the fly to every training batch) ---
    rotation_deg: float = _opt(12.0, "Largest random rotation, degrees (small: a 6 must stay a 6).")
    shift_px: float = _opt(2.5, "Largest random shift, pixels.")
    zoom: float = _opt(0.12, "Largest random relative scale change.")
    shear: float = _opt(0.15, "Largest random shear (slanted handwriting).")
    elastic_alpha: float = _opt(1.2, "Strength in pixels of the smooth elastic distortion (0 = off).")
    stroke_prob: float = _opt(
        0.3, "Share of images made thinner or bolder (canvas pens, scanner thresholds)."
    )
    blur_noise_prob: float = _opt(0.15, "Share of images blurred and given sensor noise (scans, photos).")
    variant_prob: float = _opt(
        0.5, "Share of 1s and 7s drawn European style (flag on the 1, bar through the 7)."
    )
    long_flag_deg: float = _opt(
        45.0,
        "Angle (degrees below the horizontal) from which a 1's flag may reach 0.7 of its height; the"
        " longest flag grows from 0.5 at 35 degrees. Flat long flags look like a 7's bar.",
    )
    variant_copies: int = _opt(
        3,
        "European variants drawn per 1 and 7 (about 42 MB each); each time one is used, it is picked at random.",
    )
    join_prob: float = _opt(
        0.0,
        "Share of all digits given a stroke joining them to a neighbour, as in cursive numbers"
        " (drawn into the variants, so at most --variant-prob). Off: 0.2 cost MNIST 0.09 point and"
        " read cheques worse (BENCHMARKS.md, 2026-12-02).",
    )
    # --- distribution ---
    distributed: bool = _opt(False, "Train with tf.distribute.MultiWorkerMirroredStrategy (reads TF_CONFIG).")

    def resolved_out(self) -> Path:
        """The model folder to publish into."""
        return Path(self.out) if self.out else get_settings().model_dir

    to_dict = _as_dict


@dataclass
class OneDigitConfig:
    """How the one-digit checker is trained (`python -m training.one_digit`)."""

    samples: int = _opt(40000, "Synthetic pieces of each kind: single digits, and not one digit.")
    epochs: int = _opt(4, "Passes over the pieces.")
    batch_size: int = _opt(128, "Pieces per gradient step.")
    seed: int = _opt(0, "Seed for the pieces, the split and the weights.")
    digits_from_version: int | None = _opt(
        None,
        "Draw digits only from the MNIST training images this digit-model version trained on (its"
        " card's split), so its held-out digits stay unseen (default: the served version).",
    )
    data_dir: Path | None = _opt(
        None, "Folder with the MNIST IDX files (default: $MNIST_DIR, cache, download)."
    )
    out: Path | None = _opt(None, "Model folder to publish into (default: <model_store>/one_digit).")

    def resolved_out(self) -> Path:
        return Path(self.out) if self.out else get_settings().one_digit_dir

    to_dict = _as_dict


@dataclass
class PenConfig:
    """How the pen model is trained (`python -m training.pen`)."""

    epochs: int = _opt(20, "Passes over the train writers' drawings, each drawn a new way every pass.")
    batch_size: int = _opt(128, "Drawings per gradient step.")
    learning_rate: float = _opt(3e-3, "Peak learning rate of the warm-up-then-cosine schedule (AdamW).")
    label_smoothing: float = _opt(0.05, "Label smoothing of the cross-entropy.")
    varied_share: float = _opt(
        0.8, "Share of drawings turned, slanted, resampled and trembling each pass (the rest as written)."
    )
    seed: int = _opt(0, "Seed for the weights, shuffling and variations.")
    pairs_with_version: int | None = _opt(
        None,
        "The digit-model version the pen model is blended with (default: the served one). Its card's"
        " validation writers are held out here too, and the blend is chosen on them.",
    )
    handwriting_dir: Path | None = _opt(
        None, "Folder with the real-handwriting sets (default: $HANDWRITING_DIR, then the user cache)."
    )
    limit: int | None = _opt(None, "Use only this many drawings per set (smoke runs).")
    out: Path | None = _opt(None, "Model folder to publish into (default: <model_store>/pen_digit).")

    def resolved_out(self) -> Path:
        return Path(self.out) if self.out else get_settings().pen_dir

    to_dict = _as_dict


@dataclass
class StringConfig:
    """How the string reader is trained (`python -m training.strings`)."""

    # --- data: synthetic numbers from the train splits (training/strings/compose.py) ---
    strings: int = _opt(50000, "Synthetic numbers (1-8 digits) generated to train on.")
    val_strings: int = _opt(
        2000, "Synthetic numbers made of the validation writers' digits, to choose the checkpoint on."
    )
    val_writer_fraction: float = _opt(
        0.1, "Share of each real set's writers held out (all their digits) for the validation numbers."
    )
    pen_share: float = _opt(0.45, "Share of cursive numbers drawn from pen trajectories on paper.")
    canvas_share: float = _opt(0.2, "Share of numbers drawn from pen trajectories on the Draw page's canvas.")
    glyph_share: float = _opt(
        0.35, "Share of numbers made of digit pictures (MNIST, scans, optdigits, mfeat) side by side."
    )
    limit: int | None = _opt(None, "Use only this many digits of each set (smoke runs).")
    workers: int | None = _opt(None, "Processes making the numbers (default: one per core).")
    # --- model (training/strings/model.py) ---
    width: int = _opt(24, "Filters of the first convolution block (2x, 3x, 4x in the later ones).")
    rnn_units: int = _opt(96, "Units of each direction of the BiLSTM (or the conv head's half width).")
    head: str = _opt(
        "bilstm", "What reads the columns in context: bilstm or conv (dilated 1-D convolutions)."
    )
    dropout: float = _opt(0.2, "Dropout on the columns before the context layer.")
    # --- optimisation ---
    epochs: int = _opt(7, "Passes over the generated numbers.")
    batch_size: int = _opt(64, "Rows per gradient step (rows of similar width are batched together).")
    learning_rate: float = _opt(2e-3, "Peak learning rate (AdamW, warm-up then cosine decay).")
    weight_decay: float = _opt(1e-4, "Decoupled weight decay of AdamW.")
    max_minutes: float = _opt(
        27.0, "Stop training after this many minutes (data making included) and keep the best epoch so far."
    )
    seed: int = _opt(0, "Seed for the writers' split, the numbers, the weights and the batches.")
    # --- paths ---
    handwriting_dir: Path | None = _opt(
        None, "Folder with the real-handwriting sets (default: $HANDWRITING_DIR, then the user cache)."
    )
    allow_missing: bool = _opt(
        False, "Train on the sets that can be had when some are missing (the card says which)."
    )
    data_dir: Path | None = _opt(
        None, "Folder with the MNIST IDX files (default: $MNIST_DIR, cache, download)."
    )
    out: Path | None = _opt(None, "Model folder to publish into (default: <model_store>/digit_string).")

    def resolved_out(self) -> Path:
        return Path(self.out) if self.out else get_settings().string_model_dir

    to_dict = _as_dict


def _parse_bool(text: str) -> bool:
    if text.lower() in {"1", "true", "yes", "on"}:
        return True
    if text.lower() in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type = TrainConfig) -> None:
    """One --flag per dataclass field, with its help text and default."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        kind = {bool: bool, int: int, float: float, str: str, Path: Path}.get(hint)
        if kind is None:  # Optional[...]
            args = [a for a in getattr(hint, "__args__", ()) if a is not type(None)]
            kind = args[0] if args else str
        # The parser formats help with %, and appends the default.
        help_text = f.metadata.get("help", "").replace("%", "%%")
        if kind is bool:
            parser.add_argument(
                flag, dest=f.name, nargs="?", const=True, default=f.default, type=_parse_bool, help=help_text
            )
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=f.default, help=help_text)


def config_from_args(args: argparse.Namespace, cls: type = TrainConfig) -> Any:
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

"""The string model: a small CNN reads columns of the row, a BiLSTM reads the columns in
context, and a CTC head says for each frame (4 columns) which digit ends there, if any.

In: rows (N, 32, W, 1) float32 in 0..1, white ink on black (`digit_app.string_input`).
Out: (N, W/4, 11) frame probabilities; class 10 is "blank". Trained with CTC's loss, which
needs no digit boxes: only the string.

Why this shape: the CNN sees a digit's strokes (pooled to a quarter of the width, enough
frames for two digits per digit-width, as CTC needs between repeated digits: "00"); the
BiLSTM lets a frame use both neighbours, which is what tells a ligature or an overlapping
stroke from a digit; CTC lets the model place the digits itself, so touching and joined
digits need no cut. Convolutions keep the height pooling to 2 rows so that what sits low (a
comma, a dash) stays apart from what stands tall. Sizes were measured (BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Any

from digit_app.ctc import BLANK
from digit_app.string_input import HEIGHT, STRIDE

INPUT_NAME = "image"
OUTPUT_NAME = "frame_probabilities"
CLASSES = BLANK + 1


def _conv(x: Any, filters: int, name: str) -> Any:
    from keras import layers

    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_model(width: int = 32, rnn_units: int = 96, head: str = "bilstm", dropout: float = 0.2) -> Any:
    """(N, 32, W, 1) -> (N, W/4, 11) probabilities. `width`: filters of the first block
    (2x, 3x, 4x in the later ones); `head`: "bilstm" or "conv" (a stack of 1-D convolutions,
    measured against the BiLSTM)."""
    import keras
    from keras import layers

    inputs = keras.Input((HEIGHT, None, 1), name=INPUT_NAME)
    x = _conv(inputs, width, "b1")
    x = layers.MaxPooling2D((2, 2), name="b1_pool")(x)  # 16 x W/2
    x = _conv(x, 2 * width, "b2")
    x = layers.MaxPooling2D((2, 2), name="b2_pool")(x)  # 8 x W/4
    x = _conv(x, 3 * width, "b3a")
    x = _conv(x, 3 * width, "b3b")
    x = layers.MaxPooling2D((2, 1), name="b3_pool")(x)  # 4 x W/4
    x = _conv(x, 4 * width, "b4")
    x = layers.MaxPooling2D((2, 1), name="b4_pool")(x)  # 2 x W/4
    # Columns become frames: (N, 2, T, C) -> (N, T, 2C).
    x = layers.Permute((2, 1, 3), name="frames")(x)
    x = layers.Reshape((-1, 2 * 4 * width), name="columns")(x)
    x = layers.Dropout(dropout, name="drop")(x)
    if head == "bilstm":
        x = layers.Bidirectional(layers.LSTM(rnn_units, return_sequences=True), name="context")(x)
    elif head == "conv":
        for i, rate in enumerate((1, 2, 4)):
            x = layers.Conv1D(
                2 * rnn_units, 3, padding="same", dilation_rate=rate, activation="relu", name=f"context{i}"
            )(x)
    else:
        raise ValueError(f"unknown head {head!r} (bilstm or conv)")
    outputs = layers.Dense(CLASSES, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name="digit_string")


def frames_for(width: int) -> int:
    return width // STRIDE


def ctc_loss(labels: Any, label_length: Any, probs: Any, frames: Any) -> Any:
    """Mean CTC loss of a batch: dense labels (N, L) padded with -1, their lengths, the
    model's (N, T, 11) probabilities and each row's frame count."""
    import tensorflow as tf

    logits = tf.math.log(tf.maximum(probs, 1e-8))
    loss = tf.nn.ctc_loss(
        labels=tf.cast(labels, tf.int32),
        logits=logits,
        label_length=tf.cast(label_length, tf.int32),
        logit_length=tf.cast(frames, tf.int32),
        logits_time_major=False,
        blank_index=BLANK,
    )
    return tf.reduce_mean(loss)

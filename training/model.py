"""The CNN: three convolution blocks with batch norm, then a small classifier head."""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers, ops

from training.config import TrainConfig


def load_model(path: str | Path) -> keras.Model:
    """A published version's .keras file, for fine-tuning or calibrating it. Loaded through this
    module so that its custom layers (`Deskew`) are registered first."""
    return keras.models.load_model(path, compile=False)


MAX_SKEW = 1.0  # the steepest slant straightened (horizontal shift per row); more is not a slant


@keras.saving.register_keras_serializable(package="digit_app")
class Deskew(layers.Layer):
    """Shear each image so that its ink has no slant: x' = x - skew * (y - cy), skew = mu11 / mu02.

    The classic normalisation of handwriting (LeCun et al. deskewed MNIST the same way): people
    slant their digits by tens of degrees, and a network that never has to learn slant spends
    its capacity on shape. Inside the model, so every server of a version deskews the same way,
    and plain tensor ops (a tent-weighted sum along each row), so it converts to TensorFlow Lite.
    The shear is about the centre of mass, which stays where the pipeline put it.
    """

    def call(self, images: keras.KerasTensor) -> keras.KerasTensor:
        x = images[..., 0]
        n = x.shape[1]
        pos = ops.arange(n, dtype=x.dtype)
        mass = ops.maximum(ops.sum(x, axis=(1, 2)), 1e-6)
        rows = ops.sum(x, axis=2)  # (B, rows)
        cols = ops.sum(x, axis=1)  # (B, cols)
        cy = ops.sum(rows * pos, axis=1) / mass
        cx = ops.sum(cols * pos, axis=1) / mass
        dy = pos[None, :] - cy[:, None]  # (B, rows)
        dx = pos[None, :] - cx[:, None]  # (B, cols)
        mu02 = ops.sum(rows * dy * dy, axis=1) / mass
        mu11 = ops.sum(ops.sum(x * dx[:, None, :], axis=2) * dy, axis=1) / mass
        skew = ops.clip(mu11 / ops.maximum(mu02, 1e-3), -MAX_SKEW, MAX_SKEW)
        # Row r of the output samples row r of the input at column c + skew * (r - cy).
        source = pos[None, None, :] + (skew[:, None] * dy)[:, :, None]  # (B, rows, out cols)
        # Linear interpolation as a tent weight of every input column for each output column.
        weights = ops.relu(1.0 - ops.abs(pos[None, None, :, None] - source[:, :, None, :]))
        out = ops.einsum("bri,brio->bro", x, weights)
        return out[..., None]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape


def _conv_bn(x: keras.KerasTensor, filters: int, padding: str = "same") -> keras.KerasTensor:
    x = layers.Conv2D(filters, 3, padding=padding, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def build_model(cfg: TrainConfig) -> keras.Model:
    """Image (28,28,1) in 0..1 -> ten class probabilities."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = Deskew(name="deskew")(inputs) if cfg.deskew else inputs
    x = _conv_bn(x, cfg.width)
    x = _conv_bn(x, cfg.width)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.1)(x)
    x = _conv_bn(x, cfg.width * 2)
    x = _conv_bn(x, cfg.width * 2)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.2)(x)
    x = _conv_bn(x, cfg.width * 4, padding="valid")  # 7x7 -> 5x5
    x = layers.Flatten()(x)
    x = layers.Dense(cfg.dense_units, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(cfg.dropout)(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mnist_cnn")

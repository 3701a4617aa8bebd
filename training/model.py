"""The CNN: three convolution blocks with batch norm, then a small classifier head."""

from __future__ import annotations

import keras
from keras import layers

from training.config import TrainConfig


def _conv_bn(x: keras.KerasTensor, filters: int, padding: str = "same") -> keras.KerasTensor:
    x = layers.Conv2D(filters, 3, padding=padding, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def build_model(cfg: TrainConfig) -> keras.Model:
    """Image (28,28,1) in 0..1 -> ten class probabilities."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = _conv_bn(inputs, cfg.width)
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

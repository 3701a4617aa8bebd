"""Offline training: MNIST loading, the CNN, augmentation, evaluation and export."""

"""Handwritten-digit recognition: the reading path (`reading`), model store and predictor shared
by the app, the CLI, training and tests. Only the page modules import Streamlit."""

__version__ = "0.1.0"

"""Rendering shared by the pages (the only other Streamlit-importing module besides the pages)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st

from digit_app.model_store import ModelStoreError
from digit_app.predictor import Predictor, served_predictor

log = logging.getLogger("digit_app")


def predictor_or_stop() -> Predictor:
    """The served model, or a clear message (never a traceback) when there is none."""
    try:
        return served_predictor()
    except ModelStoreError as exc:
        st.error(f"No model can be served: {exc}")
        st.stop()
        raise  # unreachable: st.stop() ends the script run


def guarded(view: Callable[[], None]) -> None:
    """Run a page body; an unexpected error becomes a message for this user, not a traceback."""
    try:
        view()
    except Exception as exc:  # noqa: BLE001 - the page must keep serving
        if type(exc).__name__ in {"StopException", "RerunException"}:  # Streamlit's control flow
            raise
        log.exception("page error")
        st.error(
            f"Something went wrong while handling this input ({type(exc).__name__}). "
            "Nothing was stored; please try again or use another image."
        )


def probabilities_chart(probabilities: tuple[float, ...] | np.ndarray, key: str | None = None) -> None:
    df = pd.DataFrame({"digit": [str(d) for d in range(10)], "probability": list(probabilities)})
    st.bar_chart(df, x="digit", y="probability", height=160, y_label="", x_label="")


def model_image(image28: np.ndarray, caption: str = "what the model sees") -> None:
    st.image(np.clip(image28, 0, 1), caption=caption, width=84, clamp=True)


def result_table(result: object) -> pd.DataFrame:
    """One row per digit: position, shown label, confidence, box."""
    rows = []
    for i, d in enumerate(result.detail):
        x, y, w, h = d.box
        rows.append(
            {
                "#": i + 1,
                "digit": d.shown,
                "confidence": round(d.confidence, 4),
                "x": x,
                "y": y,
                "w": w,
                "h": h,
            }
        )
    return pd.DataFrame(rows)

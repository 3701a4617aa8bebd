"""Rendering shared by the pages (the only other Streamlit-importing module besides the pages)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st

from digit_app import autoretrain, saving
from digit_app.model_store import ModelStoreError
from digit_app.predictor import Predictor, broken_versions, served_predictor

log = logging.getLogger("digit_app")


def predictor_or_stop() -> Predictor:
    """The served model, or a clear message (never a traceback) when there is none."""
    try:
        predictor = served_predictor()
        skipped = [v for v in broken_versions() if v > predictor.version]
        if skipped:
            st.warning(
                f"Model version {', '.join(map(str, skipped))} could not be loaded (incomplete or corrupt); "
                f"serving version {predictor.version}, the newest one that works."
            )
        return predictor
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


def session_id() -> str:
    """An anonymous id for this browser session (stored with its feedback, so it can be deleted)."""
    if "session_id" not in st.session_state:
        st.session_state["session_id"] = uuid.uuid4().hex
    return st.session_state["session_id"]


def feedback_form(result: object, *, key: str, source: str, model_version: int, image: np.ndarray) -> None:
    """Confirm or correct a result; each drawing or image is stored at most once per session."""
    digest = hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()[:16] + key
    saved: dict = st.session_state.setdefault("feedback_saved", {})
    if digest in saved:
        st.success(saved[digest])
        return
    shown = "".join(d.shown for d in result.detail)
    with st.form(f"feedback-{digest}", border=False):
        truth = st.text_input(
            "Correct digits",
            value=shown.replace("?", ""),
            key=f"truth-{digest}",
            help="Type what was really written (one digit per box), then save. Saving unchanged digits "
            "confirms the prediction.",
        )
        submitted = st.form_submit_button("Save feedback", icon=":material/check:")
    if not submitted:
        return
    try:
        ids = saving.record(
            result, truth, source=source, session_id=session_id(), model_version=model_version, image=image
        )
    except saving.FeedbackError as exc:
        st.warning(f"Not saved: {exc}.")
        return
    typed = "".join(truth.split())
    corrected = sum(1 for d, t in zip(result.detail, typed, strict=False) if str(d.label) != t)
    what = f"{corrected} correction(s)" if corrected else "confirmation"
    saved[digest] = (
        f"Thanks: saved {typed} as {what} ({len(ids)} digit(s)). It will be used by the next retraining."
    )
    st.success(saved[digest])
    job = autoretrain.after_feedback_saved()  # stored already; the trigger never fails the save
    if job is not None:
        st.toast(f"Enough new corrections: automatic retraining job {job.id} started")


def heatmap(frame: pd.DataFrame, title: str, normalized: bool) -> None:
    """A confusion matrix as an Altair heatmap with the numbers on the cells."""
    import altair as alt

    order = [str(d) for d in range(10)]
    base = alt.Chart(frame, title=title).encode(
        x=alt.X("predicted:O", sort=order, title="predicted"),
        y=alt.Y("true:O", sort=order, title="true label"),
    )
    fmt = ".0%" if normalized else "d"
    rect = base.mark_rect().encode(
        color=alt.Color("value:Q", scale=alt.Scale(scheme="blues"), legend=None),
        tooltip=["true", "predicted", "count", alt.Tooltip("share:Q", format=".1%")],
    )
    text = base.mark_text(fontSize=11).encode(
        text=alt.condition(
            alt.datum.count > 0, alt.Text("share:Q" if normalized else "count:Q", format=fmt), alt.value("")
        ),
        color=alt.condition(alt.datum.share > 0.5, alt.value("white"), alt.value("#333")),
    )
    st.altair_chart((rect + text).properties(height=340), width="stretch")


def admin_password(label: str = "Admin password") -> str | None:
    """A password box when admin actions are protected, else None (nothing to ask)."""
    from digit_app import admin

    if not admin.password_required():
        return None
    if admin.configured_password() is None:
        st.info("Admin actions are disabled here: set DIGIT_APP_ADMIN_PASSWORD to enable them.")
        return None
    return st.text_input(label, type="password", key="admin_password")

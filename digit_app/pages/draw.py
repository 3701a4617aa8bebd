"""Draw page: a canvas, recognition as soon as a stroke ends, and what the model saw."""

from __future__ import annotations

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from digit_app.pages.common import feedback_form, guarded, model_image, predictor_or_stop, probabilities_chart
from digit_app.recognize import recognize
from digit_app.string_reader import WHOLE
from digit_app.strokes import read_canvas

CANVAS_PX = 280


def view() -> None:
    st.title("Draw digits")
    st.caption(
        "Draw one digit or a whole number with the mouse or a finger; it is read as soon as you lift the pen."
    )
    left, right = st.columns([1, 1], gap="large")
    with left:
        stroke = st.slider(
            "Pen width",
            8,
            40,
            20,
            key="pen_width",
            help="How the pen looks. The strokes are read at the pen width MNIST was written with, so any width reads the same.",
        )
        canvas = st_canvas(
            stroke_width=stroke,
            stroke_color="#FFFFFF",
            background_color="#000000",
            height=CANVAS_PX,
            width=CANVAS_PX,
            drawing_mode="freedraw",
            return_image_data=True,
            update_streamlit=True,
            key="canvas",
        )
        st.caption("Use the canvas toolbar to undo or clear.")
    predictor = predictor_or_stop()  # after the canvas, so it shows while the model loads
    # The strokes redrawn with an MNIST-like pen whatever the pen width (see digit_app.strokes).
    gray, drawn = read_canvas(canvas.json_data, canvas.image_data, (CANVAS_PX, CANVAS_PX))
    strokes = sum(
        1 for o in (canvas.json_data or {}).get("objects", []) if str(o.get("type", "")).lower() == "path"
    )
    plural = "stroke" if strokes == 1 else "strokes"
    with right:
        if gray is None:
            st.metric("Prediction", "–")
            st.info("Draw a digit on the black canvas.")
            return
        # The strokes too: the pen model, when the store has one, reads each digit's path.
        result = recognize(gray, predictor, single=False, strokes=drawn)
        if not result.detail:
            st.metric("Prediction", "–")
            st.info(f"{result.message or 'No digit found: draw a digit on the canvas.'} · {strokes} {plural}")
            return
        st.metric("Prediction", result.digits, help=f"model version {predictor.version}")
        unsure = " — unsure, shown as ?" if "?" in result.digits else ""
        st.caption(
            f"confidence {result.confidence:.1%}{unsure} · read from {strokes} {plural}"
            f" · model version {predictor.version}{' · ' + WHOLE if result.reader == 'string' else ''}"
        )
        for i, digit in enumerate(result.detail):
            cols = st.columns([1, 3])
            with cols[0]:
                model_image(digit.image28, caption=f"{digit.shown} ({digit.confidence:.0%})")
            with cols[1]:
                probabilities_chart(digit.probabilities, key=f"p{i}")
        feedback_form(result, key="canvas", source="canvas", model_version=predictor.version, image=gray)


guarded(view)

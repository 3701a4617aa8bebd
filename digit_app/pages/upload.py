"""Upload page: one or many images, digits boxed and read, CSV of the batch."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import streamlit as st

from digit_app.config import get_settings
from digit_app.imageio import ImageError, decode_image
from digit_app.pages.common import (
    feedback_form,
    guarded,
    model_image,
    predictor_or_stop,
    probabilities_chart,
    result_table,
)
from digit_app.recognize import recognize
from digit_app.string_reader import WHOLE


def boxed(gray: np.ndarray, result: object) -> np.ndarray:
    """The upload in colour with a box and the label drawn around each digit found.

    Small images (cheque crops are ~60 px high) are enlarged first so boxes and labels stay legible.
    """
    zoom = max(1.0, 480 / max(gray.shape))
    rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    if zoom > 1:
        rgb = cv2.resize(rgb, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    pad = int(28 * max(1.0, max(rgb.shape) / 600))
    rgb = cv2.copyMakeBorder(rgb, pad, 0, 0, 0, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    scale = max(1.0, max(rgb.shape) / 600)
    for d in result.detail:
        x, y, w, h = (int(round(v * zoom)) for v in d.box)
        y += pad
        color = (230, 120, 0) if d.unsure else (0, 160, 60)
        cv2.rectangle(rgb, (x, y), (x + w, y + h), color, max(1, int(2 * scale)))
        cv2.putText(
            rgb,
            d.shown,
            (x, max(12, y - int(4 * scale))),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.7 * scale,
            color,
            max(1, int(2 * scale)),
            cv2.LINE_AA,
        )
    return rgb


def view() -> None:
    st.title("Upload images")
    st.caption("Scans or photos of handwritten digits: a single digit, a number, a cheque amount.")
    settings = get_settings()
    predictor = predictor_or_stop()
    single = st.toggle("Each image is one digit", value=False, key="single")
    files = st.file_uploader(
        "Images",
        accept_multiple_files=True,
        key="uploads",
        help=f"PNG, JPEG, BMP, TIFF, WebP or GIF, up to {settings.max_upload_bytes // 2**20} MB",
    )
    if not files:
        st.info("Drop one or more images here.")
        return
    rows = []
    for index, up in enumerate(files):
        st.subheader(up.name)
        if up.size > settings.max_upload_bytes:
            st.error(f"{up.name}: too large ({up.size:,} bytes; the limit is {settings.max_upload_bytes:,}).")
            rows.append({"file": up.name, "digits": "", "confidence": None, "error": "too large"})
            continue
        try:
            gray = decode_image(up.getvalue(), up.name)
        except ImageError as exc:
            st.error(str(exc))
            rows.append({"file": up.name, "digits": "", "confidence": None, "error": str(exc)})
            continue
        result = recognize(gray, predictor, single=single)
        rows.append(
            {
                "file": up.name,
                "digits": result.digits,
                "confidence": round(result.confidence, 4),
                "error": None if result.detail else result.message,
            }
        )
        left, right = st.columns([1, 1])
        with left:
            st.image(boxed(gray, result), width="stretch")
        with right:
            if not result.detail:
                st.warning(f"{up.name}: {result.message or 'no digit found'}")
                continue
            st.metric("Prediction", result.digits)
            if result.reader == "string":
                st.caption(WHOLE)
            st.dataframe(result_table(result), hide_index=True)
            for i, d in enumerate(result.detail):
                with st.expander(f"digit {i + 1}: {d.shown} ({d.confidence:.1%})"):
                    model_image(d.image28)
                    probabilities_chart(d.probabilities)
            feedback_form(
                result, key=f"upload-{index}", source="upload", model_version=predictor.version, image=gray
            )
    table = pd.DataFrame(rows)
    st.divider()
    st.dataframe(table, hide_index=True)
    st.download_button("Download results (CSV)", table.to_csv(index=False).encode(), "digits.csv", "text/csv")


guarded(view)

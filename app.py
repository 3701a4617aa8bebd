"""Streamlit entry point: `streamlit run app.py` (or `make run`)."""

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "digit_app" / "pages"

st.set_page_config(page_title="Digit recognizer", page_icon="✍️", layout="wide")
navigation = st.navigation(
    [
        st.Page(PAGES / "draw.py", title="Draw", icon=":material/draw:", default=True),
        st.Page(PAGES / "upload.py", title="Upload", icon=":material/upload_file:"),
        st.Page(PAGES / "insights.py", title="Live confusion matrix", icon=":material/grid_on:"),
        st.Page(PAGES / "retrain.py", title="Retrain", icon=":material/model_training:"),
    ]
)
navigation.run()

"""Streamlit entry point (placeholder until the recognition pages land)."""

import streamlit as st

st.set_page_config(page_title="Digit recognizer", page_icon="✍️")
st.title("Handwritten digit recognizer")
st.write("The drawing and upload pages arrive with the recognition pipeline.")

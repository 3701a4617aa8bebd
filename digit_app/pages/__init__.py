"""Streamlit page modules: thin views (widgets, one call into digit_app, rendering)."""

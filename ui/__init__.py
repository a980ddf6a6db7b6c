"""Streamlit-only helpers shared by app.py and the pages (session keys, cached resources, widgets)."""

"""Tables the dashboard's pages show, built from the registry, reports and data sources.

No Streamlit and no TensorFlow: every page can draw from these without loading a model.
"""

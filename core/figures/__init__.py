"""Every plotly figure PetLab draws (curves, confusion matrix, maps), built from plain tables: the
dashboard shows them and the run report embeds them. No Streamlit, no TensorFlow."""

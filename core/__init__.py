"""PetLab core: the transfer-learning product without a screen.

Data sources, backbones and models, training and fine-tuning, the run registry,
evaluation, prediction and the command line (`python -m core`). Nothing in this
package imports streamlit; the dashboard (app.py and views/) calls into it.
"""

__version__ = "0.1.0"

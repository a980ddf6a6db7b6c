"""Using a trained run (TensorFlow): evaluation, prediction, Grad-CAM and export."""

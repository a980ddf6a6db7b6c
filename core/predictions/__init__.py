"""Answers for photos without TensorFlow: top-k predictions, and LiteRT's copy of a run's model."""

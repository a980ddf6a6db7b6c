"""Training (TensorFlow): the worker that runs queued runs, the datasets, the feature cache, devices."""

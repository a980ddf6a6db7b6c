"""The run registry and run requests, without TensorFlow: the dashboard queues and reads runs here."""

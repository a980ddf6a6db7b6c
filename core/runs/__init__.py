"""Runs without TensorFlow: the dashboard queues, reads and follows training runs from here.

store           RunStore: the registry's API (lifecycle writes, claiming, reads that never write)
database        the SQLite file: a connection per process, transactions, schema, error sentences
rows            how a run is stored in a table row (columns, JSON text) and read back as a record
records         RunRecord and its typed views (data, train, finetune, live progress)
layout          RunPaths: every path and file name of a run
health          whether a finished run's files are usable (`broken`), checked cheaply
liveness        whether the process that runs a run is still there
requests        validating and queueing head, fine-tuning and resume requests
worker_process  starting and watching the dashboard's background training process
"""

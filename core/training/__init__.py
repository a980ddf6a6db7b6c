"""Training (TensorFlow): the worker that runs queued runs, its recipes and what they share.

worker (claim, train, record how a run ended), head and finetune (the two recipes), fit (the
fit both share), callbacks (registry reports, per-epoch backup, resumable early stopping),
artifacts (the files a run leaves), datasets, feature_cache, device.
"""

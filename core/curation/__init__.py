"""Label curation: the label-issue ranking a page shows, and the person's marks (relabel, exclude,
keep) saved per data source and applied to the data the next run trains on.

    marks     the marks file of a data source, and the immutable snapshot a queued run trains on
    apply     marks applied to a split: the rows training keeps and their labels; curated counts
    ranking   the ranking's table (cleanlab's scores), read, written and printed
"""

DEFAULT_FOLDS = 5  # heads of the out-of-fold predictions (each trains on the other k-1 folds)
DEFAULT_TOP = 20  # suspects the command line prints

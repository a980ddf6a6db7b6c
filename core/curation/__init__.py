"""Label curation: the label-issue ranking a page shows, and the person's marks (relabel, exclude,
keep) saved per data source and applied to the data the next run trains on."""

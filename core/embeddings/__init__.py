"""The embedding map: a run's backbone features projected to 2-D (PCA, then t-SNE), cached per
feature set, and the tables the map page draws from."""

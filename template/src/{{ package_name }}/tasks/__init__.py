"""Lightning modules that train a model for one task: loss with event weights, metrics,
optimizer and scheduler."""

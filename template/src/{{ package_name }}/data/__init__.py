"""ROOT files to training batches: sources, expressions, selection, padding, preprocessing,
splitting, datasets, the Lightning data module and toy data.

The data module lives in :mod:`.datamodule`; it is not imported here because importing
Lightning takes seconds and the toy-data command does not need it.
"""

"""Image-text datasets: base types, the synthetic stream, CSV and Karpathy files, webdataset.

:func:`open_data` (in :mod:`sdtools.data.specs`) turns a data SPEC into a dataset.
"""

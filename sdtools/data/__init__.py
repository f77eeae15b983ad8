"""Image-text datasets: base types, the synthetic stream, CSV and Karpathy files, webdataset,
and labelled image sets (ImageFolder, CSV label columns, webdataset `cls`; see labels.py).

:func:`open_data` (in :mod:`sdtools.data.specs`) turns a data SPEC into a dataset.
"""

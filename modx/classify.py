"""Zero-shot classification and a linear probe per evaluation set, after each phase.

The measurement lives in :mod:`sdtools.classify` (CLIP_benchmark's protocol; see there); this
module is the name a run's evaluation calls.
"""

from __future__ import annotations

from sdtools.classify import classify_sets


def classify(loaded, data, image, device, linear_probe: bool = True) -> dict:
    """``{task: {"zero_shot": {...}, "linear_probe": accuracy or None}}`` for the tasks
    ``data`` carries (see :meth:`ImageTextData.class_labels`); empty when it carries none."""
    return classify_sets(loaded, data, image, device or "cpu", linear_probe=linear_probe)

"""After each phase: retrieval on every evaluation set and the probe embeddings for geometry."""

from __future__ import annotations

import numpy as np

from sdtools.measures.retrieval import retrieval
from sdtools.models.embeddings import Embeddings
from sdtools.models.extract import embed

from .classify import classify


def evaluate_phase(loaded, evals, device, batch_size: int = 256, workers=None,
                   linear_probe: bool = True):
    """Returns (set names, [RetrievalResult.to_dict() with "classification" added], probe
    Embeddings over all sets). ``classification``: zero-shot and linear-probe accuracy on the
    tasks the set carries (:mod:`modx.classify`; the synthetic stream's shapes and colours).

    Runs in this process alone (no collective), so rank 0 can evaluate while the others wait.
    ``workers``: a function of a set's data giving its DataLoader workers (default: none).
    ``linear_probe``: False scores zero-shot only (the probe's accuracy is then None).

    The probe is every evaluation set's images and captions, concatenated; its ``meta``
    records which set each image came from, so the report can measure geometry on them.
    """
    names, results, parts = [], [], []
    for name, data in evals:
        emb = embed(loaded, data, batch_size=batch_size, device=device, cache=False,
                    progress=False, shard=False, num_workers=workers(data) if workers else 0)
        names.append(name)
        res = retrieval(emb.image, emb.text, emb.image_of_text, ci=True).to_dict()
        res["classification"] = classify(loaded, data, emb.image, device or "cpu",
                                         linear_probe=linear_probe)
        results.append(res)
        parts.append(emb)
    offsets = np.cumsum([0] + [e.n_images for e in parts])
    probe = Embeddings(
        np.concatenate([e.image for e in parts]),
        np.concatenate([e.text for e in parts]),
        np.concatenate([e.image_of_text + off for e, off in zip(parts, offsets, strict=False)]),
        {"sets": names, "set_of_image": np.repeat(np.arange(len(parts)),
                                                  [e.n_images for e in parts]).tolist(),
         "data": "+".join(e.meta.get("data", "") for e in parts)},
    )
    return names, results, probe

"""Simulated studies for calibrating the rule of :mod:`modx.frontier` over trade-off shapes.

Per study: a baseline trade-off of one shape, retention ``-drop * shape(l / top)`` at
learning ``l`` (``drop`` retention points lost over the sweep's learning range ``[0, top]``),
sampled at the learning of each swept learning rate of a study preset (read from
:data:`modx.demo.STUDY_PRESETS`); per seed a learning offset and a retention level (N(0, 1)
each, shared by the seed's runs, as a phase-0 model is), measurement noise ``noise`` on
retention and ``noise / 2`` on learning. The method sits at one position along the sweep
(uniform over the swept learning range and 10% beyond its top), on the same curve plus
``effect``. The baseline's points include its curve's start, without noise, as a study's do
for fine-tuning (lr -> 0 is the phase-0 model: learning and retention exactly 0). Shapes
(all non-increasing, the rule's assumption):

- ``linear``: a straight line (chords unbiased);
- ``concave``: forgetting accelerates with learning, ``u**2``;
- ``convex``: forgetting front-loaded, ``sqrt(u)``;
- ``saturating``: learning saturates while forgetting keeps growing, ``0.3 u + 0.7 u**8``.

Learning of a learning rate ``lr`` is ``top * lr / (lr + c)``: ``c`` and ``top`` per preset,
chosen to resemble the studies' measured sweeps (``domains``: learning about 8 to 51;
``shift``: saturating near 11; ``quick``: three rates). ``dense`` is no preset: the domains
range bracketed every 2 learning points (what a second sweep axis would give).
"""

from __future__ import annotations

import numpy as np

from .frontier import ALPHA, frontier_gap, frontier_verdict, t_p

SHAPES = {
    "linear": lambda u: u,
    "concave": lambda u: u ** 2,
    "convex": lambda u: np.sqrt(u),
    "saturating": lambda u: 0.3 * u + 0.7 * u ** 8,
}
# preset -> (c, top): learning = top * lr / (lr + c)
SPACING = {"domains": (6e-5, 54.0), "shift": (1e-5, 11.0), "quick": (1e-4, 15.0)}
DENSE = "dense"  # not a preset: the domains range bracketed every 2 learning points, 5 seeds


def sweep_learning(preset: str) -> tuple[np.ndarray, int]:
    """The preset's fine-tuning sweep as learning positions, and its number of seeds."""
    from .demo import STUDY_PRESETS

    if preset == DENSE:
        return np.arange(8.0, 52.0, 2.0), 5
    c, top = SPACING[preset]
    lrs = np.asarray(sorted(STUDY_PRESETS[preset]["grid"]["finetune"]), dtype=np.float64)
    return top * lrs / (lrs + c), len(STUDY_PRESETS[preset]["seeds"])


def curve(shape: str, learning, top: float, drop: float):
    u = np.clip(np.asarray(learning, dtype=np.float64) / top, 0.0, None)
    return -drop * SHAPES[shape](u)


def simulate(rng, shape: str, preset: str, noise: float, effect: float = 0.0,
             drop: float = 20.0, seeds: int | None = None, anchor: bool = True) -> dict:
    """One simulated study's verdict (:func:`modx.frontier.frontier_verdict` of one value).
    ``anchor``: the baseline's points include its curve's start without noise (what a study
    adds for fine-tuning: lr -> 0 is the phase-0 model)."""
    xs, n = sweep_learning(preset)
    n = seeds or n
    top = SPACING["domains" if preset == DENSE else preset][1]
    span = xs[-1] - xs[0]
    pos = rng.uniform(xs[0], xs[-1] + 0.1 * span)
    base, method = {}, {}
    for s in range(n):
        shift, level = rng.normal(0, 1), rng.normal(0, 1)
        lb = xs + rng.normal(0, noise / 2, xs.size)
        rb = level + curve(shape, xs, top, drop) + rng.normal(0, noise, xs.size)
        base[s] = list(zip((lb + shift).tolist(), rb.tolist(), strict=True))
        if anchor:
            base[s].append((float(shift), float(level)))
        rm = level + curve(shape, pos, top, drop) + effect + rng.normal(0, noise)
        method[s] = (float(pos + shift + rng.normal(0, noise / 2)), float(rm))
    g = frontier_gap(method, base)
    chords = [v["gap"] for v in g["per_seed"].values()]
    p = t_p(chords) if None not in chords else None
    return {**frontier_verdict({"m": g}), "classes": g["classes"],
            "chord_holds": p is not None and p < ALPHA}


def rates(rng, shape: str, preset: str, noise: float, effect: float, n: int,
          drop: float = 20.0) -> dict:
    """Shares of "holds" / "does not hold" / "inconclusive" over ``n`` simulated studies, the
    share of seeds per class, and ``chord_holds``: how often the earlier rule (a t test on the
    gaps read off the chords, every seed inside the range) said "holds" in the same studies."""
    verdicts, chord, classes = [], 0, dict.fromkeys(("matched", "dominating", "dominated",
                                           "incomparable"), 0)
    for _ in range(n):
        r = simulate(rng, shape, preset, noise, effect, drop)
        verdicts.append(r["verdict"])
        chord += r["chord_holds"]
        for k, v in r["classes"].items():
            classes[k] += v
    total = sum(classes.values()) or 1
    return {"holds": verdicts.count("holds") / n,
            "does not hold": verdicts.count("does not hold") / n,
            "inconclusive": verdicts.count("inconclusive") / n, "n": n,
            "chord_holds": chord / n,
            "classes": {k: v / total for k, v in classes.items()}}

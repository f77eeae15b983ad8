"""The synthetic stream's vocabulary and knobs: the shapes, colours, sizes, positions, fills,
background styles and tones an image may show, the caption and class-prompt templates, the
two protocols (``domains`` and ``shift``) and :class:`SyntheticConfig`, which says what each
domain draws from. Rendering and the datasets are in :mod:`sdtools.data.synthetic`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import DataError

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")
COLOURS = {
    "red": (0.95, 0.2, 0.15), "green": (0.2, 0.9, 0.25), "blue": (0.25, 0.45, 1.0),
    "yellow": (0.97, 0.9, 0.2), "magenta": (0.95, 0.25, 0.9), "cyan": (0.2, 0.9, 0.95),
}
SIZES = {"small": 0.13, "medium": 0.18, "large": 0.24}  # radius as a share of the image side
POSITIONS = ("top left", "top", "top right", "left", "centre", "right",
             "bottom left", "bottom", "bottom right")
FILLS = ("filled", "outlined")
STYLES = ("plain", "striped", "dotted", "checkered", "noisy", "wavy")
TONES = {
    "navy": (0.05, 0.07, 0.25), "maroon": (0.25, 0.05, 0.07), "forest": (0.05, 0.22, 0.08),
    "charcoal": (0.15, 0.15, 0.15), "plum": (0.2, 0.06, 0.22), "teal": (0.04, 0.2, 0.22),
}
TEMPLATES = (
    "a {size} {fill} {colour} {shape} at the {pos} on a {tone} {style} background",
    "{pos}: {size} {colour} {shape}, {fill}, over {style} {tone}",
    "picture of a {colour} {shape} ({size}, {fill}) in the {pos}, {tone} {style} backdrop",
    "{style} {tone} background with one {fill} {size} {colour} {shape}, {pos}",
    "there is a {colour} {shape}, {size} and {fill}, {pos} over a {style} {tone} field",
    "{fill} {shape} in {colour}, {size} size, placed {pos}; backdrop {tone} and {style}",
)
# prompt templates of the stream's classification tasks ({c}: the class name)
CLASS_TEMPLATES = {
    "shape": ("a photo of a {c}.", "a {c} shape.", "a picture of a {c} on a background.",
              "there is a {c} in the image."),
    "colour": ("a photo of something {c}.", "a {c} shape.", "an object coloured {c}.",
               "there is something {c} in the image."),
}
DOMAIN_TEMPLATES = 4  # the domains protocol words its captions with the first four templates
PROTOCOLS = ("domains", "shift")
# the shift protocol: domain 0 (base) and domain 1 (shifted) share every shape and colour; the
# shifted one adds a background style, a tone and a caption template the base never shows,
# drops one template, and favours small shapes near the corners. Sized so that a base model
# is competent there but not perfect (seed 0, 1,000 phase-0 steps: 84 R@1 on the base test
# set, 56 on the shifted one; shifting every style, tone and template gave 8)
SHIFT: dict[int, dict[str, tuple[Any, ...]]] = {
    0: {"style": (0, 1), "tone": (0, 1, 2), "templates": (0, 1, 4),
        "size_p": (1 / 3, 1 / 3, 1 / 3), "pos_w": (1, 1, 1, 1, 1, 1, 1, 1, 1)},
    1: {"style": (0, 1, 2), "tone": (0, 1, 2, 3), "templates": (0, 1, 2),
        "size_p": (0.55, 0.3, 0.15), "pos_w": (3, 1, 3, 1, 0.5, 1, 3, 1, 3)},
}
SPLITS = {"train": 0, "test": 1}


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic stream (all in one place).

    Attributes
    ----------
    image_size : int
        Side of the square images (pixels).
    n_domains : int
        Domains of the stream.
    train_per_domain, test_per_domain : int
        Images per domain and split.
    captions_per_image : int
        Captions each image carries.
    styles_per_domain, drop_shapes, drop_colours : int
        Backgrounds per domain and the shapes and colours each domain leaves out.
    seed : int
        Seed of the whole stream.
    protocol : str
        ``domains`` (style domains with rotating vocabularies) or ``shift`` (a base set and a
        shifted one with the same vocabulary).

    See Also
    --------
    SyntheticStream : The stream these knobs configure.
    open_data : ``synthetic:k=v,...`` SPECs set these fields by name.

    Examples
    --------
    >>> from sdtools import SyntheticConfig
    >>> sorted(SyntheticConfig(n_domains=2).domain_vocab(0))
    ['colour', 'shape', 'style']
    """

    image_size: int = 32
    n_domains: int = 4
    train_per_domain: int = 3000
    test_per_domain: int = 500
    captions_per_image: int = 3
    styles_per_domain: int = 2  # sliding window over STYLES: domain k uses k .. k+styles-1
    drop_shapes: int = 2  # shapes left out per domain (rotating)
    drop_colours: int = 2  # colours left out per domain (rotating)
    seed: int = 0
    protocol: str = "domains"  # domains: style domains with rotating vocabularies; shift: a
    # base domain and a shifted one with the same vocabulary (see SHIFT)

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise DataError(f"protocol must be one of {', '.join(PROTOCOLS)}, got "
                            f"{self.protocol!r}")
        if self.protocol == "shift" and self.n_domains != 2:
            object.__setattr__(self, "n_domains", 2)  # base and shifted
        if self.image_size < 16:
            raise DataError(f"image_size must be >= 16, got {self.image_size}")
        if not 1 <= self.n_domains <= len(STYLES) - self.styles_per_domain + 1:
            raise DataError(
                f"n_domains must be in [1, {len(STYLES) - self.styles_per_domain + 1}] with "
                f"{self.styles_per_domain} styles per domain, got {self.n_domains}"
            )
        most = 3 if self.protocol == "shift" else DOMAIN_TEMPLATES
        if not 1 <= self.captions_per_image <= most:
            raise DataError(f"captions_per_image must be in [1, {most}]")
        if not 0 <= self.drop_shapes < len(SHAPES) or not 0 <= self.drop_colours < len(COLOURS):
            raise DataError("drop_shapes and drop_colours must leave at least one of each")

    def domain_vocab(self, k: int) -> dict[str, tuple[int, ...]]:
        """Indices of the shapes, colours and styles that domain ``k`` uses.

        Domains protocol: a rotating subset of shapes and colours is left out, shifted once
        per 3 domains so that domain 3 does not repeat domain 0's vocabulary."""
        if self.protocol == "shift":
            return {"shape": tuple(range(len(SHAPES))), "colour": tuple(range(len(COLOURS))),
                    "style": SHIFT[k]["style"]}

        def keep(n_all, n_drop):
            drop = ({(n_drop * (k + 2) + j + k // 3) % n_all for j in range(n_drop)}
                    if n_drop else set())
            return tuple(i for i in range(n_all) if i not in drop)

        return {
            "shape": keep(len(SHAPES), self.drop_shapes),
            "colour": keep(len(COLOURS), self.drop_colours),
            "style": tuple(range(k, k + self.styles_per_domain)),
        }

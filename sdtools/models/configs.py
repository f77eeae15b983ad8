"""Small open_clip model configs for tests, examples and the synthetic demo (random init)."""

from __future__ import annotations


def tiny_clip_cfg(
    embed_dim: int = 64,
    width: int = 64,
    layers: int = 2,
    image_size: int = 32,
    patch_size: int = 4,
    context_length: int = 24,
    vocab_size: int = 49408,
    quick_gelu: bool = True,
) -> dict:
    """An open_clip model config for a tiny ViT CLIP (about 3.4M parameters by default).

    Heads are ``width // 64`` in both towers, as OpenAI-layout weights imply, so a state dict of
    this model also loads through the OpenAI-layout inference.
    """
    heads = max(width // 64, 1)
    return {
        "embed_dim": embed_dim,
        "quick_gelu": quick_gelu,
        "vision_cfg": {"image_size": image_size, "layers": layers, "width": width,
                       "patch_size": patch_size, "head_width": width // heads},
        "text_cfg": {"context_length": context_length, "vocab_size": vocab_size,
                     "width": width, "heads": heads, "layers": layers},
    }

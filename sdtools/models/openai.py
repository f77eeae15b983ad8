"""OpenAI CLIP's state-dict layout: recognise it and infer an open_clip config from it."""

from __future__ import annotations


def infer_openai_cfg(sd: dict) -> dict:
    """Infer an open_clip config from a state dict in OpenAI CLIP's layout (ViT or ResNet).

    Attention heads are not stored in the weights: like OpenAI (and open_clip), heads are
    ``width // 64``. QuickGELU is used, as in OpenAI's and the official Mod-X models.
    """
    def count(prefix: str) -> int:
        return len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})

    if "visual.proj" in sd:
        width = sd["visual.conv1.weight"].shape[0]
        patch = sd["visual.conv1.weight"].shape[-1]
        grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        vision = {
            "layers": count("visual.transformer.resblocks."),
            "width": width,
            "patch_size": patch,
            "image_size": patch * grid,
            "mlp_ratio": sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width,
        }
    else:
        out = round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
        vision = {
            "layers": [count(f"visual.layer{b}.") for b in (1, 2, 3, 4)],
            "width": sd["visual.layer1.0.conv1.weight"].shape[0],
            "image_size": out * 32,
        }
    width = sd["ln_final.weight"].shape[0]
    text = {
        "context_length": sd["positional_embedding"].shape[0],
        "vocab_size": sd["token_embedding.weight"].shape[0],
        "width": width,
        "heads": max(width // 64, 1),
        "layers": count("transformer.resblocks."),
        "mlp_ratio": sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width,
    }
    return {"embed_dim": sd["text_projection"].shape[1], "quick_gelu": True,
            "vision_cfg": vision, "text_cfg": text}


def looks_openai(sd: dict) -> bool:
    return "text_projection" in sd and "ln_final.weight" in sd and (
        "visual.proj" in sd or "visual.attnpool.positional_embedding" in sd
    ) and "transformer.resblocks.0.mlp.c_fc.weight" in sd



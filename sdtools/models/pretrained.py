"""``ARCH:PRETRAINED_TAG`` specs, resolved from open_clip's local cache only (no download)."""

from __future__ import annotations

import os

from ..errors import CheckpointError


def cached_pretrained(arch: str, tag: str, cache_dir=None) -> str:
    """Path of cached weights for ``arch:tag``; never touches the network."""
    import open_clip
    from open_clip import pretrained as P

    cfg = P.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = P.list_pretrained_tags_by_model(arch)
        raise CheckpointError(
            f"open_clip has no pretrained tag {tag!r} for {arch!r}"
            + (f"; known tags: {tags}" if tags else "; is the architecture name right?")
        )
    del open_clip
    looked = []
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - huggingface_hub ships with open_clip
            pass
        else:
            repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (
                hub.rstrip("/"), "open_clip_pytorch_model.bin")
            names = [*_safetensors_names(filename), filename]
            for name in names:
                hit = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
                if isinstance(hit, str) and os.path.isfile(hit):
                    return hit
            looked.append(f"Hugging Face cache ({repo}/{filename})")
    url = cfg.get("url", "")
    if url:
        d = cache_dir or os.path.expanduser("~/.cache/clip")
        target = os.path.join(d, os.path.basename(url))
        if os.path.isfile(target):
            return target
        looked.append(target)
    raise CheckpointError(
        f"weights for {arch}:{tag} are not cached (looked in {', '.join(looked) or 'nothing'}) "
        "and nothing is downloaded here; fetch them once on a machine with network access "
        "(open_clip.create_model_and_transforms), or give a local checkpoint file instead of "
        f"{arch}:{tag}"
    )


def _safetensors_names(filename: str) -> list[str]:
    """The safetensors file a hub repository may hold beside a pickled weights file (tried
    first, as open_clip's loader does): ``open_clip_pytorch_model.bin`` ->
    ``open_clip_model.safetensors``, another ``X.bin`` or ``X.pth`` -> ``X.safetensors``."""
    if filename == "open_clip_pytorch_model.bin":
        return ["open_clip_model.safetensors"]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors"]
    return []


def is_pretrained_spec(spec: str) -> bool:
    if os.path.exists(spec) or ":" not in spec:
        return False
    arch, _, tag = spec.partition(":")
    return bool(arch) and bool(tag) and "/" not in arch and not arch.endswith((".pt", ".pth"))



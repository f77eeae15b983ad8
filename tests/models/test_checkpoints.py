import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import save_modx, tiny_model, write_cfg

import sdtools
from sdtools.errors import CheckpointError
from sdtools.models.build import build_model
from sdtools.models.checkpoints import load_checkpoint, save_safetensors
from sdtools.models.openai import infer_openai_cfg


def _outputs(loaded, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = loaded.model.sdtools_info["model_cfg"] if hasattr(loaded.model, "sdtools_info") \
        else None
    size = cfg["vision_cfg"]["image_size"] if cfg else 32
    images = torch.rand(3, 3, size, size, generator=g)
    tokens = loaded.tokenizer(["a red circle", "two blue squares on a plain background", ""])
    with torch.no_grad():
        return loaded.model.encode_image(images), loaded.model.encode_text(tokens)


def _same(a, b):
    for x, y in zip(_outputs(a), _outputs(b), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.slow
def test_modx_format_roundtrip(tmp_path):
    orig, cfg = save_modx(tmp_path / "m.pt", seed=1)
    back = load_checkpoint(tmp_path / "m.pt")
    _same(orig, back)
    assert back.model.sdtools_info["model_cfg"] == cfg
    assert len(back.model.sdtools_info["sha256"]) == 64


def test_open_clip_trainer_checkpoint_with_module_prefix(tmp_path):
    orig, cfg = tiny_model(2)
    sd = {"module." + k: v for k, v in orig.model.state_dict().items()}
    torch.save({"epoch": 3, "name": "run", "state_dict": sd,
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}}, tmp_path / "e.pt")
    cfg_file = write_cfg(tmp_path / "tiny.json", cfg)
    _same(orig, load_checkpoint(tmp_path / "e.pt", model=str(cfg_file)))


def test_bare_state_dict_with_model_and_inferred(tmp_path):
    orig, cfg = tiny_model(3)
    torch.save(orig.model.state_dict(), tmp_path / "bare.pt")
    _same(orig, load_checkpoint(tmp_path / "bare.pt", model=str(write_cfg(tmp_path / "c.json",
                                                                          cfg))))
    # OpenAI's key layout, but a bare dict cannot say GELU or QuickGELU: refused, not guessed
    with pytest.raises(CheckpointError, match="QuickGELU"):
        load_checkpoint(tmp_path / "bare.pt")


def test_open_clip_gelu_checkpoint_without_config_is_refused_not_misread(tmp_path):
    """An open_clip ViT with plain GELU saved by its trainer: inferring OpenAI's layout would
    force QuickGELU and change the embeddings silently."""
    orig, cfg = tiny_model(6, quick_gelu=False)
    torch.save({"epoch": 1, "state_dict": orig.model.state_dict()}, tmp_path / "gelu.pt")
    with pytest.raises(CheckpointError, match="--model"):
        load_checkpoint(tmp_path / "gelu.pt")
    back = load_checkpoint(tmp_path / "gelu.pt", model=str(write_cfg(tmp_path / "g.json", cfg)))
    assert back.model.sdtools_info["model_cfg"]["quick_gelu"] is False
    _same(orig, back)


def test_openai_torchscript_archive_is_read_without_running_it(tmp_path):
    orig, cfg = tiny_model(7)
    m = orig.model.eval()
    traced = torch.jit.trace(m, (torch.rand(1, 3, 32, 32), torch.zeros(1, 24, dtype=torch.long)),
                             strict=False, check_trace=False)
    traced.save(str(tmp_path / "ViT-tiny.pt"))
    back = load_checkpoint(tmp_path / "ViT-tiny.pt")
    assert back.model.sdtools_info["model_cfg"]["quick_gelu"] is True  # the format settles it
    _same(orig, back)


def test_official_modx_layout_vit_is_inferred(tmp_path):
    orig, cfg = tiny_model(4, layers=2)
    torch.save({"model_state_dict": orig.model.state_dict(), "epoch": 35}, tmp_path / "o.pt")
    back = load_checkpoint(tmp_path / "o.pt")
    inferred = back.model.sdtools_info["model_cfg"]
    assert inferred["quick_gelu"] is True
    assert inferred["vision_cfg"]["layers"] == 2 and inferred["text_cfg"]["layers"] == 2
    assert inferred["vision_cfg"]["patch_size"] == 8 and inferred["vision_cfg"]["image_size"] == 32
    assert next(back.model.parameters()).dtype == torch.float32
    _same(orig, back)


def test_official_modx_layout_rn50_style_with_six_layer_text(tmp_path):
    cfg = {"embed_dim": 32, "quick_gelu": True,
           "vision_cfg": {"image_size": 64, "layers": [1, 2, 1, 1], "width": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 1,
                        "layers": 6}}
    torch.manual_seed(5)
    net = build_model(cfg)
    sd = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    sd.update(input_resolution=torch.tensor(64), context_length=torch.tensor(16),
              vocab_size=torch.tensor(49408))  # as in OpenAI's released state dicts
    torch.save({"model_state_dict": sd}, tmp_path / "rn.pt")
    back = load_checkpoint(tmp_path / "rn.pt")
    got = back.model.sdtools_info["model_cfg"]
    assert got["vision_cfg"]["layers"] == [1, 2, 1, 1]
    assert got["vision_cfg"]["image_size"] == 64 and got["text_cfg"]["layers"] == 6
    assert got["text_cfg"]["context_length"] == 16
    assert next(back.model.parameters()).dtype == torch.float32
    ref = build_model(cfg)
    ref.load_state_dict({k: v.float() for k, v in sd.items() if v.ndim or k not in (
        "input_resolution", "context_length", "vocab_size")})
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(back.model.encode_image(images), ref.encode_image(images),
                                   rtol=0, atol=0)


@pytest.mark.slow
def test_infer_cfg_matches_built_in_vit_b_32():
    import open_clip

    net = open_clip.create_model("ViT-B-32", pretrained=None, force_quick_gelu=True)
    cfg = infer_openai_cfg(net.state_dict())
    assert cfg["vision_cfg"]["width"] == 768 and cfg["vision_cfg"]["layers"] == 12
    assert cfg["vision_cfg"]["patch_size"] == 32 and cfg["vision_cfg"]["image_size"] == 224
    assert cfg["text_cfg"]["heads"] == 8 and cfg["embed_dim"] == 512


def test_safetensors_roundtrip(tmp_path):
    orig, cfg = tiny_model(6)
    save_safetensors(orig.model, tmp_path / "m.safetensors", cfg, arch="tiny")
    _same(orig, load_checkpoint(tmp_path / "m.safetensors"))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"state_dict": _Payload(marker)}, fh)
    torch.save({"model": _Payload(marker)}, tmp_path / "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        with pytest.raises(CheckpointError, match="refused|not a checkpoint"):
            load_checkpoint(tmp_path / name)
    assert not marker.exists()


def test_bad_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "notes.pt").write_text("hello, I am not a checkpoint")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "notes.pt")
    torch.save({"a": 1, "b": "x"}, tmp_path / "dict.pt")
    with pytest.raises(CheckpointError, match="no state dict of tensors"):
        load_checkpoint(tmp_path / "dict.pt")
    orig, cfg = tiny_model(7)
    sd = orig.model.state_dict()
    torch.save({k: v for k, v in sd.items() if k != "text_projection"}, tmp_path / "part.pt")
    with pytest.raises(CheckpointError, match="does not name its architecture"):
        load_checkpoint(tmp_path / "part.pt")
    with pytest.raises(CheckpointError, match=r"missing .*unexpected|missing"):
        load_checkpoint(tmp_path / "part.pt", model="RN50")
    torch.save(sd, tmp_path / "full.pt")
    with pytest.raises(CheckpointError, match="do not fit architecture ViT-B-32.*shape"):
        load_checkpoint(tmp_path / "full.pt", model="ViT-B-32")
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load_checkpoint(tmp_path / "full.pt", model="ViT-Q-99")


@pytest.mark.slow
def test_pretrained_tag_without_cache_fails_not_hangs(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="not cached"):
        load_checkpoint("ViT-B-32:openai", cache_dir=str(tmp_path / "clip"))
    with pytest.raises(CheckpointError, match="no pretrained tag"):
        load_checkpoint("ViT-B-32:no_such_tag")
    # in a fresh process without the offline flag it still answers instead of waiting on the
    # network (a hang would hit the subprocess timeout and fail the test)
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_HOME=str(tmp_path / "hf"), XDG_CACHE_HOME=str(tmp_path / "xdg"),
               HOME=str(tmp_path))
    code = ("import sdtools\n"
            "try:\n    sdtools.load_checkpoint('ViT-B-32:openai')\n"
            "except ValueError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert "not cached" in out.stdout, out.stderr


@pytest.mark.slow
def test_pretrained_tag_from_local_cache(tmp_path, monkeypatch):
    """A cached file for ARCH:TAG is found and loaded without network (url-style cache)."""
    import open_clip
    from open_clip import pretrained as P

    cfg = P.get_pretrained_cfg("RN50", "openai")
    monkeypatch.setitem(cfg, "hf_hub", "")
    net = open_clip.create_model("RN50", pretrained=None, force_quick_gelu=True)
    cache = tmp_path / "clip"
    cache.mkdir()
    target = cache / os.path.basename(cfg["url"])
    torch.save(net.state_dict(), target)
    loaded = load_checkpoint("RN50:openai", cache_dir=str(cache))
    assert loaded.model.sdtools_info["spec"] == "RN50:openai"
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        np.testing.assert_allclose(loaded.model.encode_image(x).numpy(),
                                   net.eval().encode_image(x).numpy(), atol=1e-5)


def test_public_api_exposes_loader():
    assert sdtools.load_checkpoint is load_checkpoint


@pytest.mark.slow
@pytest.mark.parametrize("arch,tag", [("ViT-B-16-SigLIP", "webli"),   # squash resize
                                      ("MobileCLIP-S1", "datacompdr"),  # bilinear, mean 0
                                      ("ViT-B-32", "openai")])
def test_pretrained_preprocessing_is_open_clips(arch, tag, monkeypatch):
    """The transform built for ARCH:TAG equals open_clip's own (create_model_and_transforms
    with the tag; its weights are not needed, so the download is stubbed out)."""
    import open_clip
    from open_clip import factory
    from PIL import Image

    from sdtools.models.build import make_preprocess
    from sdtools.models.checkpoints import pretrained_model_cfg

    monkeypatch.setattr(factory, "download_pretrained", lambda *a, **k: "/nonexistent")
    _, _, theirs = open_clip.create_model_and_transforms(arch, pretrained=tag,
                                                         load_weights=False)
    ours = make_preprocess(pretrained_model_cfg(arch, tag)[1])
    rng = np.random.default_rng(0)
    for w, h in ((640, 480), (300, 500)):  # landscape and portrait: resize modes differ
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        torch.testing.assert_close(ours(img), theirs(img), rtol=0, atol=0)


@pytest.mark.parametrize("present, expect", [
    (("open_clip_model.safetensors", "open_clip_pytorch_model.bin"), "open_clip_model.safetensors"),
    (("open_clip_pytorch_model.bin",), "open_clip_pytorch_model.bin"),
])
def test_pretrained_tag_from_the_hugging_face_cache(tmp_path, present, expect):
    """A hub-hosted tag is found in a Hugging Face cache laid out as huggingface_hub lays it
    (the safetensors copy first, as open_clip's loader prefers it); no network."""
    from sdtools.models.pretrained import cached_pretrained

    repo = tmp_path / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    for name in present:
        (snap / name).write_bytes(b"weights")
    hit = cached_pretrained("ViT-B-32", "laion2b_s34b_b79k", cache_dir=str(tmp_path))
    assert Path(hit).name == expect and Path(hit).is_file()

"""The data path on real JPEG files (640 x 480, a CSV as open_clip reads it), ViT-B-32's
preprocessing: the training stream's decode throughput, a ViT-B-32 training step and
extraction, each against a bare open_clip loop with the same DataLoader workers and
transform."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .harness import device

N_IMAGES = 256
WORKERS = 2


def _jpegs(root: Path, n: int = N_IMAGES) -> str:
    """``n`` photo-like JPEGs (smooth colour fields with texture) and a captions CSV."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    rows = ["filepath\ttitle"]
    for i in range(n):
        a, b, c = rng.uniform(0.005, 0.03, 3)
        base = np.stack([np.sin(a * xx + i), np.cos(b * yy - i), np.sin(c * (xx + yy))], -1)
        img = (127 + 90 * base + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)
        path = root / f"img{i:04d}.jpg"
        Image.fromarray(img).save(path, quality=90)
        rows.append(f"{path}\ta picture number {i} of a field")
    (root / "captions.csv").write_text("\n".join(rows) + "\n")
    return f"csv:{root / 'captions.csv'}"


class _Bare(torch.utils.data.Dataset):
    """What a bare open_clip loop reads: (image, caption) pairs through the transform."""

    def __init__(self, data, transform, tokens):
        self.data, self.transform, self.tokens = data, transform, tokens

    def __len__(self):
        return self.data.n_images

    def __getitem__(self, i):
        return self.transform(self.data.load_image(i)), self.tokens[i]


def _setup(tmp: Path):
    from sdtools.data.specs import open_data
    from sdtools.models.build import make_preprocess, make_tokenizer, resolve_model_cfg

    spec = _jpegs(tmp)
    data = open_data(spec)
    _, cfg = resolve_model_cfg("ViT-B-32")
    return spec, data, cfg, make_preprocess(cfg), make_tokenizer(cfg)


def bench_jpeg_decode() -> dict:
    """Images per second through the training stream (decode + transform, no model) against a
    bare DataLoader, with 0, 1 and 2 workers; the two are timed in turn, best of 3."""
    from modx.data import PhaseTensors
    from modx.feed import phase_stream

    batch = 32
    steps = N_IMAGES // batch * 4  # four epochs
    out = {}
    with tempfile.TemporaryDirectory() as d:
        _, data, _, pre, tok = _setup(Path(d))
        pt = PhaseTensors(data, pre, tok, max_bytes=0)

        def ours(w):
            s = phase_stream(pt, batch, 0, 1, workers=w)
            for _ in range(steps):
                next(s)
            s.close()

        def bare(w):
            loader = torch.utils.data.DataLoader(
                _Bare(data, pre, pt.tokens), batch_size=batch, num_workers=w, shuffle=True,
                drop_last=True, generator=torch.Generator().manual_seed(0))
            n = 0
            while n < steps:
                for _ in loader:
                    n += 1
                    if n == steps:
                        break

        for w in (0, 1, WORKERS):
            t = {"ours": [], "bare": []}
            for _ in range(3):
                for name, fn in (("bare", bare), ("ours", ours)):
                    t0 = time.perf_counter()
                    fn(w)
                    t[name].append(time.perf_counter() - t0)
            o, b = min(t["ours"]), min(t["bare"])
            out[f"w{w}"] = {"ours_img_s": steps * batch / o, "bare_img_s": steps * batch / b,
                            "ratio": b / o}
    r = out[f"w{WORKERS}"]["ratio"]
    return {
        "name": f"decode + ViT-B-32 preprocessing of {N_IMAGES} JPEGs 640x480, batch {batch}, "
                f"{steps} steps, best of 3 interleaved",
        "baseline": "bare DataLoader (shuffle, same transform and workers)",
        **out,
        "per_worker_img_s": out[f"w{WORKERS}"]["ours_img_s"] / WORKERS,
        "target": f"throughput >= 0.9x the bare loader at {WORKERS} workers",
        "pass": r >= 0.9,
    }


def bench_jpeg_vitb32_step() -> dict:
    """A ViT-B-32 (random init) training step fed from JPEG files with 2 workers: the
    trainer's stream, batch assembly and step against a bare open_clip loop."""
    from open_clip.loss import ClipLoss

    from modx.config import TrainConfig
    from modx.feed import phase_stream
    from modx.methods import make
    from modx.train import Trainer
    from modx.train.step import PhaseContext, assemble, train_step

    batch, steps, warm = 16, 6, 2
    dev = device()
    with tempfile.TemporaryDirectory() as d:
        spec, data, cfg, pre, tok = _setup(Path(d))
        cfg_path = Path(d) / "vitb32.json"
        cfg_path.write_text(json.dumps(cfg))
        tcfg = TrainConfig(data=spec, phases="contiguous:1", model="ViT-B-32", eval_data=[spec],
                           batch_size=batch, preload_gb=0.0, workers=WORKERS, quiet=True,
                           clip_grad=None, device=dev, methods=["finetune"],
                           precision="amp_bf16" if dev.startswith("cuda") else "fp32",
                           out=str(Path(d) / "run"))
        tr = Trainer(tcfg, progress=False)
        pt = tr.tensors(0)

        def fresh():
            torch.manual_seed(0)
            m = tr.new_model()
            return m, torch.optim.AdamW(m.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6,
                                        weight_decay=0.1)

        def ours():
            m, o = fresh()
            tr.model = m
            ctx = PhaseContext(tr, 0, "finetune", make("finetune", tcfg), None, None, pt, m, m,
                               o, steps, 1e-5, None)
            s = phase_stream(pt, batch, 0, 0, workers=WORKERS, pin=dev.startswith("cuda"))
            times = []
            for i in range(warm + steps):
                t0 = time.perf_counter()
                x, tk, old = assemble(ctx, next(s), i)
                train_step(ctx, x, tk, old, i, 1)
                times.append(time.perf_counter() - t0)
            s.close()
            return sum(times[warm:])

        def bare():
            m, o = fresh()
            loss_fn = ClipLoss()
            loader = torch.utils.data.DataLoader(
                _Bare(data, pre, pt.tokens), batch_size=batch, num_workers=WORKERS,
                shuffle=True, drop_last=True, pin_memory=dev.startswith("cuda"))
            times, it = [], iter(loader)
            amp = torch.autocast("cuda", torch.bfloat16, enabled=dev.startswith("cuda"))
            for _ in range(warm + steps):
                t0 = time.perf_counter()
                x, tk = next(it)
                m.train()
                o.zero_grad(set_to_none=True)
                with amp:
                    img, txt, scale = m(x.to(dev), tk.to(dev))
                    loss_fn(img, txt, scale).backward()
                o.step()
                times.append(time.perf_counter() - t0)
            return sum(times[warm:])

        t_bare, t_ours = bare(), ours()
    ratio = t_bare / t_ours
    return {
        "name": f"ViT-B-32 training step on JPEG files, batch {batch}, {WORKERS} workers, "
                f"{steps} steps, device {dev}",
        "baseline": "bare open_clip loop: DataLoader (same workers and transform), ClipLoss, "
                    "AdamW",
        "bare_img_s": steps * batch / t_bare, "ours_img_s": steps * batch / t_ours,
        "throughput_ratio": ratio,
        "target": ">= 0.9x the bare loop's throughput",
        "pass": ratio >= 0.9,
    }


def bench_jpeg_extraction() -> dict:
    """ViT-B-32 extraction from JPEG files with 2 workers against a bare loop."""
    from sdtools.data.base import ImageDataset
    from sdtools.models.build import Loaded, build_model
    from sdtools.models.extract import embed

    dev = torch.device(device())
    amp = dev.type == "cuda"
    with tempfile.TemporaryDirectory() as d:
        _, data, cfg, pre, tok = _setup(Path(d))
        torch.manual_seed(0)
        model = build_model(cfg).to(dev).eval()
        model.sdtools_info = {"spec": "bench", "sha256": None, "arch": "ViT-B-32",
                              "model_cfg": cfg}
        bs = 64

        def bare():
            loader = torch.utils.data.DataLoader(ImageDataset(data, pre), batch_size=bs,
                                                 num_workers=WORKERS, pin_memory=amp)
            with torch.inference_mode(), torch.autocast(dev.type, torch.bfloat16, enabled=amp):
                for _, x in loader:
                    model.encode_image(x.to(dev), normalize=True).float().cpu()
                for s in range(0, len(data.captions), bs):
                    model.encode_text(tok(data.captions[s:s + bs]).to(dev), normalize=True)

        def ours():
            embed(Loaded(model, pre, tok), data, batch_size=bs, device=dev, cache=False,
                  progress=False, shard=False, num_workers=WORKERS)

        t = {}
        for name, fn in (("bare", bare), ("ours", ours), ("bare2", bare), ("ours2", ours)):
            t0 = time.perf_counter()
            fn()
            t[name] = time.perf_counter() - t0
    t_bare, t_ours = min(t["bare"], t["bare2"]), min(t["ours"], t["ours2"])
    return {
        "name": f"ViT-B-32 extraction, {N_IMAGES} JPEGs 640x480 + captions, {WORKERS} workers, "
                f"device {dev}",
        "baseline": "bare loop: the same DataLoader, encode_image/encode_text",
        "bare_img_s": N_IMAGES / t_bare, "ours_img_s": N_IMAGES / t_ours,
        "throughput_ratio": t_bare / t_ours,
        "target": ">= 0.9x the bare loop's throughput",
        "pass": t_bare / t_ours >= 0.9,
    }


BENCHES = {"jpeg_decode": bench_jpeg_decode, "jpeg_vitb32_step": bench_jpeg_vitb32_step,
           "jpeg_extraction": bench_jpeg_extraction}


class _Photos:
    """``n`` 640 x 480 photos made on demand from their index (nothing held in memory), with
    one caption each: a stand-in for a folder of 100,000 JPEGs."""

    in_memory = False

    def __init__(self, n: int):
        self.n = n
        self.captions = [f"photo {i} of a scene" for i in range(n)]
        self.image_of_text = np.arange(n)
        self.spec = f"photos:{n}"

    @property
    def n_images(self) -> int:
        return self.n

    def load_image(self, i: int):
        from PIL import Image

        rng = np.random.default_rng(i)
        small = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
        return Image.fromarray(small).resize((640, 480))


def bench_stream_memory() -> dict:
    """Peak memory (proportional set size of the training process and its workers) while
    streaming 40 batches of 128 from 100,000 photos of 640 x 480 through ViT-B-32's
    preprocessing with 2 workers."""
    import threading

    import psutil

    from modx.data import PhaseTensors
    from modx.feed import phase_stream
    from sdtools.models.build import make_preprocess, make_tokenizer, resolve_model_cfg

    n, batch, steps = 100_000, 128, 40
    _, cfg = resolve_model_cfg("ViT-B-32")
    me = psutil.Process()
    def pss(p):  # proportional: pages a forked worker shares with its parent count once
        return p.memory_full_info().pss

    base = pss(me)
    pt = PhaseTensors(_Photos(n), make_preprocess(cfg), make_tokenizer(cfg))
    assert pt.images is None  # 100,000 x 3 x 224 x 224 floats (60 GB) are never made
    after_index = pss(me)
    peak, stop = [0], threading.Event()

    def watch():
        while not stop.is_set():
            try:
                total = pss(me) + sum(pss(c) for c in me.children(recursive=True))
            except psutil.Error:  # a worker ending between the listing and the read
                continue
            peak[0] = max(peak[0], total)
            stop.wait(0.05)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    t0 = time.perf_counter()
    s = phase_stream(pt, batch, 0, 1, workers=WORKERS)
    for _ in range(steps):
        next(s)
    s.close()
    took = time.perf_counter() - t0
    stop.set()
    th.join()
    batch_mb = batch * 3 * 224 * 224 * 4 / 2**20
    extra = (peak[0] - after_index) / 2**20
    return {
        "name": f"streaming {steps} batches of {batch} from {n:,} photos 640x480, ViT-B-32 "
                f"preprocessing, {WORKERS} workers",
        "baseline": "one batch of preprocessed images (float32)",
        "index_mb": (after_index - base) / 2**20,
        "peak_extra_mb": extra,
        "batch_mb": batch_mb,
        "peak_in_batches": extra / batch_mb,
        "img_s": steps * batch / took,
        "target": f"peak above the index <= {2 * WORKERS + 2} batches (workers x 2 "
                  "prefetched + the one in use + one being collated; the workers' own memory "
                  "counts too), never the 60 GB of the whole phase",
        "pass": extra <= (2 * WORKERS + 2) * batch_mb,
    }


BENCHES["stream_memory"] = bench_stream_memory

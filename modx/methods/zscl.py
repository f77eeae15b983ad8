"""ZSCL-style: distillation on a reference set from the initial model, and weight ensembling."""

from __future__ import annotations

import numpy as np
import torch

from modx.errors import ConfigError

from .base import Strategy, register


def reference_distillation(img, txt, img_ref, txt_ref, scale: float) -> torch.Tensor:
    """``KL(teacher || student)`` of the image-to-text and text-to-image softmax rows of the
    similarity matrices at logit scale ``scale``, averaged over rows and both directions
    (features L2-normalised; teacher features ``*_ref`` carry no gradient)."""
    s = scale * img @ txt.T
    t = scale * img_ref @ txt_ref.T
    out = 0.0
    for a, b in ((t, s), (t.T, s.T)):
        p = torch.softmax(a, 1)
        out = out + (p * (torch.log_softmax(a, 1) - torch.log_softmax(b, 1))).sum(1).mean()
    return out / 2.0


@register
class ZSCL(Strategy):
    """ZSCL-style (after Zheng et al. 2023): the CLIP loss on the new data plus ``weight`` x
    the distillation of the **initial** (phase-0) model's image-text similarities on a
    reference set that is neither old nor new data (``reference``, a data SPEC; by default
    synthetic styles that no shift-protocol phase uses), ``batch`` reference pairs a step; and
    weight ensembling: with ``ensemble = true`` the phase's model is the running mean of its
    weights over the phase's steps (set before the checkpoint is written). One process only
    (the extra forward pass is not yet synchronised under torchrun)."""

    name = "zscl"
    colour = "#e377c2"
    knob = "weight"
    log_keys = ("ref_distill",)
    teacher = "initial"
    uses_teacher_features = False  # the teacher sees the reference set, not the batch
    options = {"weight": 1.0, "batch": 32, "ensemble": True,
               "reference": "synthetic:n_domains=4,domain=2+3,split=train,n=64"}

    def __init__(self, cfg):
        super().__init__(cfg)
        self.avg: dict[str, torch.Tensor] = {}
        self.count = 0
        self.step = 0
        self.ref = None

    data_options = ("reference",)  # data SPECs, opened with the run's other data

    @classmethod
    def check_options(cls, opts):
        from ..data import check_spec_files

        if "reference" in opts:
            check_spec_files(opts["reference"], "[zscl] reference")
        if opts.get("batch", 2) < 2 or opts.get("weight", 0) < 0:
            raise ConfigError("[zscl] batch must be >= 2 and weight >= 0")

    def begin_phase(self, trainer, t):
        from sdtools.data.specs import open_data

        if trainer.world > 1:
            raise ConfigError("zscl runs in one process only; drop it from a torchrun run")
        self.ref = trainer.tensors(0, open_data(self.option("reference")))
        if not (self.avg and trainer.resumed_mid_phase):
            self.avg = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()
                        if v.is_floating_point()}
            self.count = 1

    def penalty(self, trainer):
        w = float(self.option("weight"))
        if w == 0 or self.ref is None:
            return None, {}
        n = self.ref.data.n_images
        rng = np.random.default_rng([int(self.cfg.seed), trainer.phase_t, self.step])
        idx = rng.choice(n, size=min(int(self.option("batch")), n), replace=False)
        caps = [self.ref.caps_of[i][0] for i in idx]
        x = self.ref.image_batch(idx).to(trainer.device)
        tok = self.ref.token_batch(caps).to(trainer.device)
        img, txt, _ = trainer.phase_forward(x, tok)
        teacher = trainer.phase_teacher
        with torch.no_grad():
            ti = teacher.encode_image(x, normalize=True).float()
            tt = teacher.encode_text(tok, normalize=True).float()
            scale = float(teacher.logit_scale.exp())
        term = reference_distillation(img.float(), txt.float(), ti, tt, scale)
        return w * term, {"ref_distill": float(term.detach())}

    def after_step(self, trainer, t, step):
        self.step += 1
        if not self.option("ensemble"):
            return
        self.count += 1
        with torch.no_grad():
            for k, v in trainer.model.state_dict().items():
                if k in self.avg:
                    self.avg[k].add_(v - self.avg[k], alpha=1.0 / self.count)

    def end_phase(self, trainer, t):
        if not self.option("ensemble"):
            return
        with torch.no_grad():
            for k, v in trainer.model.state_dict().items():
                if k in self.avg:
                    v.copy_(self.avg[k])

    def state_dict(self):
        return {"avg": self.avg, "count": self.count, "step": self.step}

    def load_state_dict(self, st):
        self.avg = dict(st.get("avg", {}))
        self.count = int(st.get("count", 0))
        self.step = int(st.get("step", 0))

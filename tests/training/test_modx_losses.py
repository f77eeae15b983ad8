import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modx.data import ReplayBuffer
from modx.losses import lwf_distillation, modx_alignment, modx_alignment_stats, rkd_distance


def _slow_modx(vn, tn, vo, to, temperature=1.0, exclude_diagonal=False, select=True):
    """Per-row reference of the official rule, written with plain Python loops."""
    vn, tn, vo, to = (F.normalize(x, dim=-1).double() for x in (vn, tn, vo, to))
    b = vn.shape[0]
    total = 0.0
    for new_a, new_b, old_a, old_b in ((vn, tn, vo, to), (tn, vn, to, vo)):
        for i in range(b):
            old = [float(old_a[i] @ old_b[j]) for j in range(b)]
            new = [float(new_a[i] @ new_b[j]) for j in range(b)]
            if select and max(range(b), key=lambda j: old[j]) != i:
                continue  # the old model got row i wrong: no loss
            cols = [j for j in range(b) if not (exclude_diagonal and j == i)]
            zo = sum(math.exp(old[j] / temperature) for j in cols)
            zn = sum(math.exp(new[j] / temperature) for j in cols)
            for j in cols:
                p = math.exp(old[j] / temperature) / zo
                q = math.exp(new[j] / temperature) / zn
                total += p * (math.log(p) - math.log(q))
    return 0.5 * total


@pytest.mark.parametrize("temperature,exclude", [(1.0, False), (0.1, False), (0.5, True)])
def test_modx_alignment_matches_per_row_reference(temperature, exclude):
    g = torch.Generator().manual_seed(0)
    b, d = 12, 8
    vo = torch.randn(b, d, generator=g)
    to = vo + 1.2 * torch.randn(b, d, generator=g)  # old model right on some rows only
    vn, tn = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    loss, share = modx_alignment_stats(vn, tn, vo, to, temperature=temperature,
                                       exclude_diagonal=exclude)
    ref = _slow_modx(vn, tn, vo, to, temperature, exclude)
    assert float(loss) == pytest.approx(ref, rel=1e-5)
    right_i2t = (F.normalize(vo, dim=1) @ F.normalize(to, dim=1).T).argmax(1) == torch.arange(b)
    assert 0 < int(right_i2t.sum()) < b  # rows the old model gets wrong are present
    assert 0 < share < 1
    assert float(modx_alignment(vn, tn, vo, to, temperature=temperature,
                                exclude_diagonal=exclude)) == pytest.approx(ref, rel=1e-5)
    # mean reduction = sum / number of selected rows
    mean = modx_alignment(vn, tn, vo, to, temperature, exclude, reduction="mean")
    assert float(mean) < float(loss)


def test_lwf_is_modx_without_selection():
    g = torch.Generator().manual_seed(1)
    vo, to, vn, tn = (torch.randn(10, 6, generator=g) for _ in range(4))
    assert float(lwf_distillation(vn, tn, vo, to)) == pytest.approx(
        _slow_modx(vn, tn, vo, to, select=False), rel=1e-5)


def test_old_features_get_no_gradient_and_loss_is_zero_when_equal():
    g = torch.Generator().manual_seed(2)
    vo, to = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    vn = vo.clone().requires_grad_(True)
    tn = to.clone().requires_grad_(True)
    vo.requires_grad_(True)
    loss = modx_alignment(vn, tn, vo, to)
    assert abs(float(loss.detach())) < 1e-6
    loss.backward()
    assert vo.grad is None
    assert vn.grad is not None and torch.isfinite(vn.grad).all()
    vn2 = torch.randn(8, 5, generator=g, requires_grad=True)
    modx_alignment(vn2, tn, vo, to, exclude_diagonal=True).backward()
    assert torch.isfinite(vn2.grad).all()


def test_rkd_zero_for_rotated_copies():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(16, 6, generator=g)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    assert float(rkd_distance(x @ q, x)) < 1e-10
    assert float(rkd_distance(torch.randn(16, 6, generator=g), x)) > 1e-3


def test_replay_buffer_is_a_uniform_sample():
    n, size, trials = 400, 40, 300
    counts = np.zeros(n)
    for s in range(trials):
        buf = ReplayBuffer(size, seed=s)
        for chunk in range(4):  # offered in four phases of 100
            idx = np.arange(chunk * 100, (chunk + 1) * 100)
            buf.add(chunk, idx, idx)
        assert len(buf.items) == size
        counts[buf.items[:, 1]] += 1
    expected = trials * size / n  # 30 per item
    # every quarter of the stream is kept equally often (early phases are not forgotten)
    quarters = counts.reshape(4, -1).sum(1) / (trials * size)
    np.testing.assert_allclose(quarters, 0.25, atol=0.02)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < n + 4 * math.sqrt(2 * n)  # consistent with a uniform sample
    st = buf.state_dict()
    other = ReplayBuffer(1)
    other.load_state_dict(st)
    np.testing.assert_array_equal(other.items, buf.items)

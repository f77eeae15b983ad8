import copy
import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import save_modx, tiny_cfg
from PIL import Image

import sdtools.viz.phases as F
from sdtools.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[2]
FIGS = ["fig1_rad", "fig2_sam_vs_rad", "fig3_procrustes", "fig4_deviation", "fig5_retrieval",
        "fig6_methods", "fig7_rotation_picture", "fig8_domains"]

pytestmark = pytest.mark.slow  # the demo, the examples and subprocesses


def _main(module_main, *args):
    try:
        module_main([str(a) for a in args])
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from modx.cli import main

    out = tmp_path_factory.mktemp("demo") / "run"
    _main(main, "demo", "--preset", "quick", "--out", out, "-q")
    return out


def test_quick_demo_end_to_end(quick_run):
    rep = json.loads((quick_run / "report.json").read_text())
    assert set(rep) == {"schema", "written_by", "config", "methods"}
    assert list(rep["methods"]) == ["finetune", "modx", "lwf", "cumulative"]
    for m, r in rep["methods"].items():
        for key in ("r1", "i2t", "t2i", "avg", "bwt", "geometry"):
            assert key in r, (m, key)
        r1 = np.asarray(r["r1"])
        assert r1.shape == (3, 3) and np.all((r1 >= 0) & (r1 <= 100))
        for kind in ("zero_shot", "linear_probe"):  # per task, phase and evaluation set
            for task in ("shape", "colour"):
                acc = np.asarray(r[kind][task], dtype=float)
                assert acc.shape == (3, 3) and np.all((acc >= 0) & (acc <= 100)), (kind, task)
        np.testing.assert_allclose(
            r1, (np.asarray(r["i2t"]["1"]) + np.asarray(r["t2i"]["1"])) / 2)
        assert r["bwt"] == pytest.approx(np.mean([r1[2, k] - r1[k, k] for k in range(2)]))
        assert r["avg"] == pytest.approx(r1[2].mean())
        for g in r["geometry"]:
            for ref in ("vs_phase0", "vs_prev"):
                for mod in ("image", "text"):
                    assert {"rad", "sam_drift", "procrustes"} <= set(g[ref][mod])
                assert "unsync_abs_mean" in g[ref]["deviation"]
    share = rep["methods"]["modx"]["extras"]["selected_share"]  # Mod-X's own extra
    assert share[0] is None and all(0 < s < 1 for s in share[1:])
    assert "extras" not in rep["methods"]["finetune"]
    for name in FIGS:
        for ext in ("png", "pdf"):
            p = quick_run / "figures" / f"{name}.{ext}"
            assert p.is_file() and p.stat().st_size > 2000, p
        with Image.open(quick_run / "figures" / f"{name}.png") as im:
            assert im.size[0] > 300 and len(np.unique(np.asarray(im.convert("L")))) > 10
    md = (quick_run / "report.md").read_text()
    assert "| finetune |" in md
    # the per-domain geometry table carries the rigidity with its interval
    pro = rep["methods"]["finetune"]["geometry"][-1]["vs_phase0"]["per_set"]["domain0"][
        "image"]["procrustes"]
    iv = pro["rigidity_ci"]
    assert f"{pro['rigidity']:.2f} [{iv['low']:.2f}, {iv['high']:.2f}]" in md


def _figure_of(fn, monkeypatch, *args):
    """Run a figure function and return the matplotlib figure it drew (not saved)."""
    got = {}

    def keep(fig, out, name):
        got["fig"] = fig
        return []

    monkeypatch.setattr(F, "save_both", keep)
    fn(*args)
    return got["fig"]


def test_figures_plot_the_report_numbers(quick_run, tmp_path, monkeypatch):
    rep = json.loads((quick_run / "report.json").read_text())
    # per-domain view: one column per evaluation set, old domains first, RAD means as plotted
    fig = _figure_of(F.fig_domains, monkeypatch, rep, tmp_path)
    top = [ax for ax in fig.axes if ax.get_title().startswith("domain")]
    assert [ax.get_title() for ax in top] == ["domain0", "domain1", "domain2"]
    line = top[0].lines[0]
    geo = rep["methods"]["finetune"]["geometry"]
    np.testing.assert_allclose(line.get_ydata(), [
        g["vs_phase0"]["per_set"]["domain0"]["image"]["rad"]["mean"] for g in geo])
    # below it, the held-out share with its bootstrap interval as error bars
    bottom = fig.axes[len(top)]
    pro = [g["vs_phase0"]["per_set"]["domain0"]["image"]["procrustes"] for g in geo]
    np.testing.assert_allclose(bottom.lines[0].get_ydata(), [p["explained_heldout"] for p in pro])
    segs = next(c for c in bottom.collections if len(c.get_segments())).get_segments()
    np.testing.assert_allclose([sorted(seg[:, 1]) for seg in segs], [
        [p["explained_heldout_ci"]["low"], p["explained_heldout_ci"]["high"]] for p in pro])
    # the forgetting curve carries error bars from the recorded intervals
    fig = _figure_of(F.fig_retrieval, monkeypatch, rep, tmp_path)
    curve = fig.axes[-1]
    assert any(len(c.get_segments()) for c in curve.collections)  # the bars
    np.testing.assert_allclose(curve.lines[0].get_ydata(),
                               np.asarray(rep["methods"]["finetune"]["r1"])[:, 0])
    # Procrustes panels share one y-scale
    fig = _figure_of(F.fig_procrustes, monkeypatch, rep, tmp_path)
    assert len({ax.get_ylim() for ax in fig.axes}) == 1
    # the rc context does not leak into the caller's settings
    import matplotlib

    assert matplotlib.rcParams["font.size"] != 8 or matplotlib.rcParamsDefault["font.size"] == 8


def test_method_colours_do_not_depend_on_the_process():
    import subprocess

    code = "from sdtools.viz.style import colour; print(colour('my-method'))"
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={"PYTHONHASHSEED": str(i), "PATH": ""}).stdout for i in (1, 2)}
    assert len(seen) == 1 and seen.pop().startswith("#")


def test_report_regenerated_from_run_dir_equals_original(quick_run, tmp_path):
    from sdtools.cli import main

    _main(main, "report", quick_run, "--out", tmp_path, "--no-figures", "-q")
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(
        (quick_run / "report.json").read_text())
    assert (tmp_path / "report.md").read_text() == (quick_run / "report.md").read_text()


def _truncate(rep, phases):
    """The report as if the run had stopped after ``phases`` phases (1 = phase 0 only)."""
    r = copy.deepcopy(rep)
    for m in r["methods"].values():
        m["r1"] = m["r1"][:phases]
        m["r1_ci"] = m["r1_ci"][:phases]
        for d in ("i2t", "t2i"):
            m[d] = {k: v[:phases] for k, v in m[d].items()}
        m["geometry"] = m["geometry"][: phases - 1]
        m["extras"] = {k: v[:phases] for k, v in m.get("extras", {}).items()}
        for kind in ("zero_shot", "linear_probe"):
            m[kind] = {task: v[:phases] for task, v in m.get(kind, {}).items()}
    return r


@pytest.mark.parametrize("phases", [1, 2, 3])
def test_each_figure_works_with_one_two_and_many_phases(quick_run, tmp_path, phases):
    rep = _truncate(json.loads((quick_run / "report.json").read_text()), phases)
    if phases == 1:
        for m in rep["methods"].values():
            m["bwt"] = None
    for fn in (F.fig_rad, F.fig_sam, F.fig_procrustes, F.fig_retrieval, F.fig_methods):
        paths = fn(rep, tmp_path)
        assert all(p.stat().st_size > 1000 for p in paths)
    for fn in (F.fig_deviation, F.fig_rotation_picture):
        for run_dir in (quick_run, None):
            assert all(p.stat().st_size > 1000 for p in fn(rep, tmp_path, run_dir))


def test_example_analyze_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("SDTOOLS_CACHE", str(tmp_path / "cache"))
    save_modx(tmp_path / "a.pt", seed=1)
    save_modx(tmp_path / "b.pt", seed=2)
    mod = runpy.run_path(str(ROOT / "examples" / "analyze_checkpoints.py"))
    res = mod["main"]([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--data",
                       "synthetic:n=30", "--out", str(tmp_path / "fig")])
    assert res["rotation"]["image"]["rad"]["mean"] > 0
    assert (tmp_path / "fig" / "rotation.png").stat().st_size > 1000
    assert (tmp_path / "fig" / "deviation.png").stat().st_size > 1000


def test_example_openclip_drift(tmp_path, monkeypatch):
    monkeypatch.setenv("SDTOOLS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    base, _ = save_modx(tmp_path / "base.pt", seed=3)
    # a "fine-tuned" copy: the base weights moved a little, saved as a bare state dict
    sd = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
          for k, v in base.model.state_dict().items()}
    torch.save(sd, tmp_path / "tuned.pt")
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_cfg()))
    mod = runpy.run_path(str(ROOT / "examples" / "openclip_drift.py"))
    res = mod["main"]([str(tmp_path / "base.pt"), str(tmp_path / "tuned.pt"), "--data",
                       "synthetic:n=30", "--model", str(tmp_path / "tiny.json")])
    assert 0 < res["rotation"]["image"]["rad"]["mean"] < 30
    # the real pretrained path goes as far as the (absent) download, then says so clearly
    with pytest.raises(CheckpointError, match="not cached"):
        mod["main"](["ViT-B-32:openai", str(tmp_path / "tuned.pt"), "--data", "synthetic:n=5"])


def _karpathy(root: Path, name: str, n_train: int, n_test: int, seed: int):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(n_train + n_test):
        arr = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / "images" / f"{name}{i}.jpg")
        images.append({"filename": f"{name}{i}.jpg", "split": "train" if i < n_train else "test",
                       "sentences": [{"raw": f"{name} picture {i} caption {j}"}
                                     for j in range(5)]})
    (root / f"dataset_{name}.json").write_text(json.dumps({"images": images}))
    return root / f"dataset_{name}.json", root / "images"


def test_example_flickr30k_protocol_config_on_tiny_karpathy_data(tmp_path):
    from modx.config import load
    from modx.train import Trainer

    f_json, f_img = _karpathy(tmp_path / "f30k", "flickr30k", 20, 8, 0)
    c_json, c_img = _karpathy(tmp_path / "coco", "coco", 4, 8, 1)
    save_modx(tmp_path / "coco_model.pt", seed=4)
    cfg = load(ROOT / "examples" / "flickr30k_5phase.toml", {
        "init": str(tmp_path / "coco_model.pt"),
        "data": f"karpathy:{f_json}:{f_img}:train+val",
        "base_data": f"karpathy:{c_json}:{c_img}:train", "precision": "fp32",
        "eval_data": [f"karpathy:{c_json}:{c_img}:test", f"karpathy:{f_json}:{f_img}:test"],
        "batch_size": 4, "epochs": 1.0, "out": str(tmp_path / "run"), "quiet": True,
    })
    assert cfg.phases == "contiguous:5" and cfg.alpha == 20.0 and cfg.epochs == 1.0
    assert cfg.optimizer == "official"
    tr = Trainer(cfg, progress=False)
    assert [p.n_images for p in tr.phases[1:]] == [4] * 5  # 20 images cut in 5
    report = tr.run().to_dict()
    for m in ("finetune", "modx"):
        r1 = np.asarray(report["methods"][m]["r1"])
        assert r1.shape == (6, 2)  # phase 0 (the given model) + 5 phases, 2 test sets
        assert report["methods"][m]["bwt"] is None  # test sets are not the phases
    # joint: one model on the COCO base data and every Flickr30K phase together
    assert np.asarray(report["methods"]["joint"]["r1"]).shape == (2, 2)
    assert json.loads((tmp_path / "run" / "joint" / "phase1" / "eval.json").read_text())[
        "train"]["steps"] == (4 + 20) // 4  # one epoch over base + all phases
    assert report["methods"]["modx"]["r1"][0] == report["methods"]["finetune"]["r1"][0]


def test_geometry_demo_prints_planted_angles(capsys):
    runpy.run_path(str(ROOT / "examples" / "geometry_demo.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "top angles [40." in out and "det +1" in out


def test_cli_help_is_fast_and_lazy():
    import subprocess

    code = ("import sys, sdtools.cli, modx.cli; "
            "bad = [m for m in ('torch', 'open_clip', 'matplotlib') if m in sys.modules]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"

"""Output ownership by content: a file is sdtools' only when it carries the exact provenance tag
of the kind being written, checked on the path that is really written; an input is never an
output; --force is the only way past and never deletes a file sdtools did not write. Named
pipes and other non-regular files are refused in one line before anything reads them."""

import hashlib
import json
import os
import signal

import matplotlib
import numpy as np
import pytest
from helpers import run_cli, save_modx

import sdtools
from sdtools.io import file_kind, written_by_us

matplotlib.use("Agg")


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def d(tmp_path, monkeypatch):
    monkeypatch.setenv("SDTOOLS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    sdtools.Embeddings(rng.normal(size=(20, 8)), rng.normal(size=(20, 8)), np.arange(20)).save(
        tmp_path / "good.npz")
    return tmp_path


def _user_figure(path, title):
    from matplotlib.figure import Figure

    fig = Figure()
    fig.suptitle(title)
    fig.savefig(path, metadata={"Title": title})


def _refused(main, args, capsys, what, *keep):
    before = {p: _sha(p) for p in keep}
    code, _, err = run_cli(main, args + ["-q"], capsys)
    assert code == 2, err
    assert what in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert {p: _sha(p) for p in keep} == before
    return err


def test_embed_checks_the_npz_path_numpy_writes(d, capsys):
    from sdtools.cli import main

    save_modx(d / "a.pt")
    (d / "arr.npz").write_bytes(b"the user's own archive")
    err = _refused(main, ["embed", d / "a.pt", "--data", "synthetic:n=4", "--out", d / "arr"],
                   capsys, "not written by sdtools", d / "arr.npz")
    assert "arr.npz" in err and "--force" in err


@pytest.mark.parametrize("suffix", [".svg", ".pdf"])
def test_a_figure_that_mentions_sdtools_is_not_ours(d, capsys, suffix):
    from sdtools.cli import main

    fig = d / f"mine{suffix}"
    _user_figure(fig, "made with sdtools by hand")
    assert b"sdtools" in fig.read_bytes() and not written_by_us(fig)
    _refused(main, ["rotation", d / "good.npz", d / "good.npz", "--plot", fig], capsys,
             "not written by sdtools", fig)


def test_figures_sdtools_drew_are_known_again(d, capsys):
    from sdtools.cli import main

    for suffix in (".png", ".svg", ".pdf"):
        fig = d / f"rot{suffix}"
        code, _, err = run_cli(main, ["rotation", d / "good.npz", d / "good.npz", "--plot", fig,
                                   "-q"], capsys)
        assert code == 0, err
        assert file_kind(fig) == "figure"
        code, _, err = run_cli(main, ["rotation", d / "good.npz", d / "good.npz", "--plot", fig,
                                   "-q"], capsys)  # a second run replaces its own figure
        assert code == 0, err


def test_a_markdown_that_mentions_sdtools_is_not_a_report(d, capsys):
    from sdtools.cli import main

    out = d / "out"
    out.mkdir()
    (out / "report.md").write_text("# My notes\n\nI ran sdtools on my runs.\n")
    (d / "run").mkdir()
    _refused(main, ["report", d / "run", "--out", out], capsys, "which sdtools did not write",
             out / "report.md")


def test_json_of_another_kind_is_not_replaced(d, capsys):
    from sdtools.cli import main

    r = d / "r.json"
    assert run_cli(main, ["retrieval", d / "good.npz", "--json", r, "-q"], capsys)[0] == 0
    assert file_kind(r) == "retrieval"
    assert run_cli(main, ["retrieval", d / "good.npz", "--json", r, "-q"], capsys)[0] == 0
    err = _refused(main, ["rotation", d / "good.npz", d / "good.npz", "--json", r], capsys,
                   "holds sdtools retrieval output, not rotation", r)
    assert "--force" in err
    report = d / "report.json"  # a run's report (its schema marks it), never a --json
    report.write_text(json.dumps({"schema": 1, "written_by": "sdtools 0.1.0", "config": {},
                                  "methods": {}}))
    _refused(main, ["retrieval", d / "good.npz", "--json", report], capsys,
             "holds sdtools report output", report)
    near = d / "near.json"  # a tag that merely starts with the tool's name
    near.write_text(json.dumps({"written_by": "sdtools-fan club", "kind": "retrieval"}))
    _refused(main, ["retrieval", d / "good.npz", "--json", near], capsys,
             "not written by sdtools", near)


def test_an_input_is_never_an_output(d, capsys):
    from sdtools.cli import main

    good = d / "good.npz"
    _refused(main, ["retrieval", good, "--json", good], capsys, "is an input", good)
    _refused(main, ["rotation", good, good, "--json", good, "--force"], capsys, "is an input",
             good)
    save_modx(d / "a.pt")
    csv = d / "p.csv"
    csv.write_text("filepath,title\n")
    _refused(main, ["retrieval", d / "a.pt", "--data", f"csv:{csv}", "--json", csv,
                    "--force"], capsys, "is an input", csv)


def test_two_outputs_never_share_a_path(d, capsys):
    from sdtools.cli import main

    both = d / "both.svg"
    _refused(main, ["rotation", d / "good.npz", d / "good.npz", "--json", both, "--plot",
                    both], capsys, "both name")
    assert not both.exists()


def _fake_report(monkeypatch, draws=("a.png",)):
    """A report whose build and figures are instant (the ownership rules are what is tested)."""
    from sdtools.io import tag, write_json
    from sdtools.viz.style import pyplot, save

    class Rep:
        def write(self, path):
            write_json(path, {"schema": 1, "written_by": tag(), "config": {}, "methods": {}})

    def draw(rep, where, run_dir=None, progress=False):
        return [save(pyplot().figure(), where / name) for name in draws]

    monkeypatch.setattr("sdtools.report.build_report", lambda *a, **k: Rep())
    monkeypatch.setattr("sdtools.report.markdown",
                        lambda rep: "# Continual run report\n\n<!-- written by sdtools -->\n")
    monkeypatch.setattr("sdtools.viz.phases.draw_all", draw)


def test_report_force_keeps_a_users_files_among_the_figures(d, capsys, monkeypatch):
    from sdtools.cli import main
    from sdtools.viz.style import pyplot, save

    _fake_report(monkeypatch)
    run = d / "run"
    (run / "figures").mkdir(parents=True)
    mine = run / "figures" / "notes.txt"
    mine.write_text("my notes")
    save(pyplot().figure(), run / "figures" / "stale.png")  # an old figure sdtools drew
    err = _refused(main, ["report", run], capsys, "notes.txt", mine)
    assert "every other file is kept" in err  # the refusal says what --force does
    code, _, err = run_cli(main, ["report", run, "--force", "-q"], capsys)
    assert code == 0, err
    assert mine.read_text() == "my notes"
    assert sorted(p.name for p in (run / "figures").iterdir()) == ["a.png", "notes.txt"]
    assert file_kind(run / "report.json") == "report" and file_kind(run / "report.md") == "report"
    code, _, err = run_cli(main, ["report", run, "--force", "-q"], capsys)  # again: the same
    assert code == 0 and mine.read_text() == "my notes"


def test_report_in_its_run_refuses_a_users_report_md(d, capsys, monkeypatch):
    from sdtools.cli import main

    _fake_report(monkeypatch)
    run = d / "run"
    run.mkdir()
    (run / "report.md").write_text("my own report")
    _refused(main, ["report", run], capsys, "not written by sdtools", run / "report.md")


@pytest.mark.parametrize("name, text", [("report.md", "# my study notes, with sdtools\n"),
                                        ("study.json", '{"written_by": "sdtools 0.1.0"}'),
                                        ("times.json", '{"mine": 1.0}'),
                                        ("plan.json", '{"base": {}}')])
def test_study_out_verifies_content(d, capsys, name, text):
    from modx.cli import main

    plan = d / "plan.toml"
    plan.write_text("seeds = [0]\n[base]\nsteps = 1\n[grid]\nfinetune = [5e-4]\n")
    out = d / "study"
    out.mkdir()
    (out / name).write_text(text)
    code, _, err = run_cli(main, ["study", plan, "--out", out, "-q"], capsys)
    assert code == 2 and "which sdtools did not write" in err and name in err, err
    assert (out / name).read_text() == text and sorted(os.listdir(out)) == [name]


def test_study_force_starts_its_times_afresh(d):
    from modx.study import _add_time
    from modx.study_stats import read_times

    (d / "times.json").write_text('{"mine": 1.0}')
    assert read_times(d) == {}
    _add_time(d, "seed0/phase0", 2.0)
    assert read_times(d) == {"seed0/phase0": 2.0} and read_times(d, "cpu_seconds") == {}
    _add_time(d, "seed0/finetune", 3.0, 5.5)  # process time over both cores: above wall
    assert read_times(d) == {"seed0/phase0": 2.0, "seed0/finetune": 3.0}
    assert read_times(d, "cpu_seconds") == {"seed0/finetune": 5.5}
    (d / "times.json").write_text("")  # a 0-byte file: not a study's timings, no traceback
    assert read_times(d) == {}


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)

    def alarm(signum, frame):
        raise TimeoutError("hung on a named pipe")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(30)
    yield path
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("args, what", [
    (["retrieval", "{d}/good.npz", "--json", "{p}"], "is a named pipe"),
    (["rotation", "{d}/good.npz", "{d}/good.npz", "--plot", "{p}.png"], "is a named pipe"),
    (["retrieval", "{p}", "--data", "synthetic:n=4"], "is a named pipe"),
    (["retrieval", "{p}", "--data", "synthetic:n=4", "--no-cache"], "is a named pipe"),
    (["retrieval", "{p}.npz"], "is a named pipe"),
    (["retrieval", "{d}/a.pt", "--data", "csv:{p}"], "is a named pipe"),
    (["retrieval", "{d}/a.pt", "--data", "karpathy:{p}:{d}"], "is a named pipe"),
    (["retrieval", "{d}/a.pt", "--data", "wds:{p}"], "is a named pipe"),
    (["retrieval", "{d}/a.pt", "--data", "wds:{d}"], "is a directory"),
    (["retrieval", "{d}/bare.pt", "--data", "synthetic:n=4", "--model", "{p}.json"],
     "is a named pipe"),
    (["embed", "{d}/a.pt", "--data", "synthetic:n=4", "--out", "{p}.npz"], "is a named pipe"),
    (["embed", "{d}/a.pt", "--data", "synthetic:n=4", "--out", "{p}"], "is a named pipe"),
    (["embed", "{d}/a.pt", "--data", "synthetic:n=4", "--out", "/dev/null"], "is a device"),
])
def test_non_regular_files_are_refused_without_a_hang(d, fifo, capsys, args, what):
    import torch

    from sdtools.cli import main

    loaded, _ = save_modx(d / "a.pt")
    torch.save(loaded.model.state_dict(), d / "bare.pt")
    for suffix in (".png", ".npz", ".json"):
        os.mkfifo(f"{fifo}{suffix}")
    code, _, err = run_cli(main, [a.format(d=d, p=fifo) for a in args] + ["-q"], capsys)
    assert code == 2 and what in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("cmd", [["train", "{p}"], ["study", "{p}", "--list"],
                                 ["study", "{d}", "--list"]])
def test_modx_refuses_a_pipe_or_folder_as_its_config(d, fifo, capsys, cmd):
    from modx.cli import main

    code, _, err = run_cli(main, [a.format(d=d, p=fifo) for a in cmd], capsys)
    assert code == 2 and ("is a named pipe" in err or "is a directory" in err), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("name", ["report.md", "config.json", "figures"])
def test_train_force_writes_beside_a_users_files_never_over_them(tmp_path, capsys, name):
    from modx.cli import main

    out = tmp_path / "out"
    out.mkdir()
    mine = out / name
    if name == "figures":
        mine.mkdir()
        (mine / "plot.png").write_bytes(b"mine")
    else:
        mine.write_text("mine")
    before = sorted(p.name for p in out.rglob("*"))
    code, _, err = run_cli(main, ["train", "--data", "synthetic:n_domains=2,train_per_domain=16,"
                               "test_per_domain=4", "--out", out, "--force", "--steps", "1",
                               "--phase0-steps", "1", "--batch-size", "4", "-q"], capsys)
    assert code == 2 and f"holds {name}, a name the run writes" in err, err
    assert sorted(p.name for p in out.rglob("*")) == before

"""The ``sdtools`` command line. Heavy imports happen inside commands so ``--help`` is fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .cli_common import (
    CHECKPOINT_ONLY,
    PLOT_SUFFIXES,
    SHARED,
    BatchOpt,
    Ctx,
    DataOpt,
    DeviceOpt,
    ForceOpt,
    JsonOpt,
    ModelOpt,
    NoCacheOpt,
    PlotOpt,
    PrecisionOpt,
    QuietOpt,
    SkipOpt,
    WorkersOpt,
    _check_outputs,
    _checkpoint_only,
    _console,
    _data_files,
    _labelled,
    _pct,
    _title,
    _write_json,
    embedding_command,
)
from .runner import add_version

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure spatial disorder between CLIP checkpoints: rotation, deviation, retrieval.",
)

add_version(app, "sdtools", app.info.help or "")

__all__ = ["CHECKPOINT_ONLY", "PLOT_SUFFIXES", "SHARED", "BatchOpt", "Ctx", "DataOpt",
           "DeviceOpt", "ForceOpt", "JsonOpt", "ModelOpt", "NoCacheOpt", "PlotOpt",
           "PrecisionOpt", "QuietOpt", "SkipOpt", "WorkersOpt", "app", "deviation", "embed",
           "embedding_command", "linear_probe", "main", "report", "retrieval", "rotation",
           "zeroshot"]


@app.command()
@embedding_command
def rotation(
    a: Annotated[str, typer.Argument(help="checkpoint or saved embeddings (.npz) at time a")],
    b: Annotated[str, typer.Argument(help="checkpoint or saved embeddings (.npz) at time b")],
    data: DataOpt = None,
    modality: Annotated[str, typer.Option(help="image, text or both")] = "both",
    json_out: JsonOpt = None,
    plot: PlotOpt = None,
    max_pairs: Annotated[int | None, typer.Option(
        help="estimate SAM drift from this many sampled pairs (default: exact up to 10,000 "
        "items, 2,000,000 sampled pairs above)")] = None,
    exact_sam: Annotated[bool, typer.Option(
        "--exact-sam", help="SAM drift over every pair, however many items")] = False,
    ctx: Ctx = None,  # type: ignore[assignment]  # embedding_command always passes a Ctx
    force: bool = False,
):
    """Intra-modal rotation from A to B: RAD, SAM drift, Procrustes, CKA, mutual kNN."""
    from .report import EXACT_SAM_ITEMS, SAMPLED_PAIRS, rotation_report

    _check_outputs(json_out, plot=plot, force=force, inputs=(a, b, *_data_files(data)))
    ea, eb = ctx.pair(a, b)
    if max_pairs is None and not exact_sam and max(ea.n_images, ea.n_texts) > EXACT_SAM_ITEMS:
        max_pairs = SAMPLED_PAIRS
        typer.echo(f"note: SAM drift estimated from {SAMPLED_PAIRS:,} sampled pairs (more than "
                   f"{EXACT_SAM_ITEMS:,} items; --exact-sam for every pair)", err=True)
    rep = rotation_report(ea, eb, modality=modality, max_pairs=max_pairs,
                          progress=not ctx.quiet)
    from .tables import rotation_table

    rotation_table(rep, f"rotation {a} → {b}", _console(ctx.quiet))
    if json_out:
        _write_json(json_out, {"a": a, "b": b, "data": ea.meta.get("data", data),
                               **rep.to_dict()})
    if plot:
        from .viz.pairwise import plot_rotation

        plot_rotation(rep, plot, title=_title(a, b))


@app.command()
@embedding_command
def deviation(
    a: Annotated[str, typer.Argument(help="checkpoint or saved embeddings (.npz) at time a")],
    b: Annotated[str, typer.Argument(help="checkpoint or saved embeddings (.npz) at time b")],
    data: DataOpt = None,
    json_out: JsonOpt = None,
    plot: PlotOpt = None,
    ctx: Ctx = None,  # type: ignore[assignment]  # embedding_command always passes a Ctx
    force: bool = False,
):
    """Inter-modal deviation from A to B: pair similarity, unsynchronised rotation, ranks, gap."""
    from rich.table import Table

    from .measures.summary import interval_text as _ci
    from .report import deviation_report
    from .tables import cross_text

    _check_outputs(json_out, plot=plot, force=force, inputs=(a, b, *_data_files(data)))
    ea, eb = ctx.pair(a, b)
    dev = deviation_report(ea, eb)
    d = dev.to_dict()
    out = {"a": a, "b": b, "data": ea.meta.get("data", data), **d}
    t = Table(title=f"deviation {a} → {b}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("positive-pair cosine a → b",
              f"{d['pos_sim_a_mean']:.3f} → {d['pos_sim_b_mean']:.3f}")
    t.add_row("positive-pair shift mean", f"{d['pos_shift']['mean']:+.4f}"
              + _ci(d["pos_shift"].get("mean_ci"), "{:+.4f}"))
    t.add_row("unsync |image - caption angle| mean (deg)", f"{d['unsync_abs_mean']:.2f}"
              + _ci(d.get("unsync_abs_mean_ci"), "{:.2f}"))
    t.add_row("relative rotation R_V^T R_T max / geodesic (deg)",
              f"{d['relative_rotation']['max_angle']:.2f} / "
              f"{d['relative_rotation']['geodesic_deg']:.2f} "
              f"(in {d['relative_rotation']['rank']} shared dims)"
              + (f"; in-step null of the largest {d['relative_rotation']['null_high_deg'][0]:.2f}"
                 f" ({'above' if d['relative_rotation']['max_above_null'] else 'within'})"
                 if d["relative_rotation"].get("null_high_deg") else ""))
    t.add_row("cross-applied residual, captions / images", cross_text(d["cross_residual"]))
    for k in ("t2i", "i2t"):
        tp = d["top1"][k]
        t.add_row(f"{k} top-1 lost / gained / kept",
                  f"{tp['lost']} / {tp['gained']} / {tp['kept']} of {tp['queries']}")
    t.add_row("mean t2i rank a → b", f"{d['t2i_mean_rank_a']:.1f} → {d['t2i_mean_rank_b']:.1f}")
    t.add_row("modality gap a → b", f"{d['modality_gap_a']:.3f} → {d['modality_gap_b']:.3f}")
    _console(ctx.quiet).print(t)
    if json_out:
        _write_json(json_out, out)
    if plot:
        from .viz.pairwise import plot_deviation

        plot_deviation(dev, plot, title=_title(a, b))


@app.command()
@embedding_command
def embed(
    ckpt: Annotated[str, typer.Argument(help="checkpoint spec")],
    data: Annotated[str, typer.Option(
        "--data", help="probe set: synthetic[:k=v,...], csv:PATH, karpathy:JSON:ROOT[:split], "
        "wds:SHARDS, run:RUN_DIR")],
    out: Annotated[Path, typer.Option("--out", help="output .npz")] = Path("embeddings.npz"),
    ctx: Ctx = None,  # type: ignore[assignment]  # embedding_command always passes a Ctx
    force: bool = False,
):
    """Embed a probe set with a checkpoint and save the embeddings (.npz)."""
    from .errors import UserError
    from .io import check_outputs, not_regular
    from .models.embeddings import npz_path

    if out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file name such as {out}/emb.npz "
                        "(nothing is written beside it)")
    if not_regular(out) is not None:  # /dev/null would become /dev/null.npz
        raise UserError(f"--out {out} is {not_regular(out)}, not a file; give a file name")
    out = npz_path(out)  # the file that is written: numpy's suffix added first
    check_outputs([(out, "--out", "embeddings")], inputs=(ckpt, *_data_files(data)),
                  force=force)
    emb = ctx.embeddings(ckpt)
    path = emb.save(out)
    if not ctx.quiet:
        typer.echo(f"wrote {path} ({emb.n_images} images, {emb.n_texts} captions, "
                   f"dim {emb.dim})")


@app.command()
@embedding_command
def retrieval(
    ckpt_or_emb: Annotated[str, typer.Argument(help="checkpoint spec or embeddings .npz")],
    data: DataOpt = None,
    json_out: JsonOpt = None,
    ctx: Ctx = None,  # type: ignore[assignment]  # embedding_command always passes a Ctx
    force: bool = False,
):
    """Recall@1/5/10 both ways and mean/median ranks."""
    from rich.table import Table

    from .measures.retrieval import retrieval as run

    _check_outputs(json_out, force=force, inputs=(ckpt_or_emb, *_data_files(data)))
    emb = ctx.embeddings(ckpt_or_emb)
    res = run(emb.image, emb.text, emb.image_of_text)
    t = Table(title=f"retrieval {ckpt_or_emb} ({emb.n_images} images, {emb.n_texts} captions)")
    t.add_column("direction")
    for k in res.i2t:
        t.add_column(f"R@{k}", justify="right")
    t.add_column("mean / median rank", justify="right")
    t.add_row("image→text", *[f"{v:.2f}" for v in res.i2t.values()],
              f"{res.i2t_mean_rank:.1f} / {res.i2t_median_rank:.0f}")
    t.add_row("text→image", *[f"{v:.2f}" for v in res.t2i.values()],
              f"{res.t2i_mean_rank:.1f} / {res.t2i_median_rank:.0f}")
    _console(ctx.quiet).print(t)
    if json_out:
        _write_json(json_out, {"checkpoint": ckpt_or_emb, "data": emb.meta.get("data", data),
                               **res.to_dict()})


@app.command()
@embedding_command
def zeroshot(
    ckpt: Annotated[str, typer.Argument(help="checkpoint spec")],
    data: Annotated[str, typer.Option(
        "--data", help="labelled set: imagefolder:ROOT, csv:PATH:label-key=COL, "
        "wds:SHARDS:label-key=cls, synthetic (options classnames=FILE, templates=FILE|openai|"
        "simple, n=N per class)")],
    task: Annotated[str | None, typer.Option(
        "--task", help="classification task where the set carries several (synthetic: "
        "shape, colour)")] = None,
    json_out: JsonOpt = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="write the confusion matrix figure (.png/.pdf/.svg)")] = None,
    predictions: Annotated[bool, typer.Option(
        "--predictions", help="with --json: every image's predicted and true class")] = False,
    ctx: Ctx = None,  # type: ignore[assignment]  # embedding_command always passes a Ctx
    force: bool = False,
):
    """Zero-shot classification: top-1, top-5 and mean per-class recall (CLIP_benchmark's)."""
    from rich.table import Table

    from .classify import zero_shot

    _checkpoint_only(ckpt, "zeroshot")
    if predictions and json_out is None:
        from .errors import UserError

        raise UserError("--predictions writes every image's prediction into the --json file; "
                        "give --json F too")
    _check_outputs(json_out, plot=plot, force=force)
    ds = _labelled(ctx, data)
    from .data.base import loader_workers

    r = zero_shot(ckpt, ds, task=task, arch=ctx.model, device=ctx.device,
                  batch_size=ctx.batch_size, cache=not ctx.no_cache, progress=not ctx.quiet,
                  num_workers=loader_workers(ctx.workers, ds), precision=ctx.precision)
    t = Table(title=f"zero-shot {ckpt} on {ds.spec} ({r.n_images} images, "
                    f"{len(r.classnames)} classes, {r.n_templates} templates)")
    for col in ("top-1 (%)", "top-5 (%)", "mean per-class recall (%)"):
        t.add_column(col, justify="right")
    t.add_row(_pct(r.top1), _pct(r.top5), _pct(r.mean_per_class_recall))
    _console(ctx.quiet).print(t)
    if json_out:
        _write_json(json_out, {"checkpoint": ckpt, **r.to_dict(predictions=predictions)})
    if plot:
        from .viz.classes import plot_confusion

        plot_confusion(r, plot)


@app.command(name="linear-probe")
@embedding_command
def linear_probe(
    ckpt: Annotated[str, typer.Argument(help="checkpoint spec")],
    train: Annotated[str, typer.Option("--train", help="labelled training set (a data SPEC "
                                       "as for zeroshot)")],
    test: Annotated[str, typer.Option("--test", help="labelled test set, the same classes")],
    task: Annotated[str | None, typer.Option(
        "--task", help="classification task where the sets carry several")] = None,
    val_proportion: Annotated[float, typer.Option(
        "--val-proportion", min=0.01, max=0.99, help="share of the training set that chooses "
        "the regularisation")] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="seed of the validation split")] = 0,
    json_out: JsonOpt = None,
    ctx: Ctx = None,  # type: ignore[assignment]  # embedding_command always passes a Ctx
    force: bool = False,
):
    """Linear probe: logistic regression on frozen image embeddings, scored on --test.

    The regularisation is chosen on a validation split of --train (CLIP_benchmark's search)."""
    from rich.table import Table

    from .classify import linear_probe as run
    from .data.base import loader_workers

    _checkpoint_only(ckpt, "linear-probe")
    _check_outputs(json_out, force=force)
    tr, te = _labelled(ctx, train), _labelled(ctx, test)
    r = run(ckpt, tr, te, task=task, arch=ctx.model, device=ctx.device,
            batch_size=ctx.batch_size, cache=not ctx.no_cache, progress=not ctx.quiet,
            num_workers=loader_workers(ctx.workers, tr), precision=ctx.precision,
            val_proportion=val_proportion, seed=seed)
    s = r.settings
    t = Table(title=f"linear probe {ckpt}: train {s['n_train']} + val {s['n_val']}, test "
                    f"{r.labels.size} images, {s['n_classes']} classes",
              caption=f"lambda {s['lambda']:.3g} (C {s['C']:.3g}) chosen on the validation "
                      f"split (top-1 {s['val_top1']:.1f}%)")
    for col in ("top-1 (%)", "top-5 (%)", "mean per-class recall (%)"):
        t.add_column(col, justify="right")
    t.add_row(_pct(r.top1), _pct(r.top5), _pct(r.mean_per_class_recall))
    _console(ctx.quiet).print(t)
    if json_out:
        _write_json(json_out, {"checkpoint": ckpt, **r.to_dict()})


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a modx run directory")],
    out: Annotated[Path | None, typer.Option("--out", help="where to write report.json, "
                                             "report.md and figures/ (default: RUN_DIR)")] = None,
    figures: Annotated[bool, typer.Option(help="draw the figures")] = True,
    quiet: QuietOpt = False,
    force: ForceOpt = False,
):
    """Regenerate the multi-phase report (JSON, Markdown, figures) without retraining."""
    from .errors import RunError
    from .io import check_output_dir, check_writable_file, refresh_dir, write_text
    from .report import build_report, markdown
    from .viz.phases import draw_all

    if not run_dir.is_dir():
        raise RunError(f"run directory not found: {run_dir}")
    if out is None:  # the run's own folder: only its report files are replaced
        out = run_dir
        check_output_dir(out / "figures", "figures folder", "figure", force)
        for name in ("report.json", "report.md"):
            check_writable_file(out / name, "the report file", force, "report")
    else:
        check_output_dir(out, "--out", {"report.json": "report", "report.md": "report",
                                        "figures": "figure"}, force)
    rep = build_report(run_dir, progress=not quiet)
    n = 0
    if figures:  # a user's files among the figures are kept, --force or not
        with refresh_dir(out / "figures") as tmp:
            n = len(draw_all(rep, tmp, run_dir=run_dir, progress=not quiet))
    rep.write(out / "report.json")
    write_text(out / "report.md", markdown(rep))
    if not quiet:
        typer.echo(f"wrote {out / 'report.json'}, {out / 'report.md'} and {n} figure files")


def main(argv=None) -> None:
    """Entry point of ``sdtools``."""
    from .runner import run_app

    run_app(app, argv)


if __name__ == "__main__":
    main()

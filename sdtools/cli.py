"""The ``sdtools`` command line. Heavy imports happen inside commands so ``--help`` is fast."""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Annotated

import typer

from .log import quiet_messages
from .runner import add_version

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure spatial disorder between CLIP checkpoints: rotation, deviation, retrieval.",
)

add_version(app, "sdtools", app.info.help or "")


DataOpt = Annotated[str | None, typer.Option(
    "--data", help="probe set (needed for checkpoints, not for .npz): synthetic[:k=v,...], "
    "csv:PATH, karpathy:JSON:ROOT[:split], wds:SHARDS, run:RUN_DIR (a run's own probe)")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="open_clip architecture (or model-config JSON) for files that do not name "
    "one")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1, ...")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="images/captions per batch")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", callback=quiet_messages,
                                        help="no progress lines, bars or tables: notices and "
                                        "warnings only")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="write the results as JSON")]
PlotOpt = Annotated[Path | None, typer.Option("--plot", help="write a figure (.png/.pdf)")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="do not read or write the "
                                          "embedding cache")]
SkipOpt = Annotated[bool, typer.Option("--skip-missing", help="leave out missing images")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", min=0, help="DataLoader workers decoding images (default: none for the "
    "synthetic stream, else the cores less one, at most 8)")]
PrecisionOpt = Annotated[str | None, typer.Option(
    "--precision", help="compute precision of the embeddings: fp32, bf16 (autocast) or auto "
    "(bf16 on CUDA, fp32 elsewhere); part of the embeddings' identity in the cache")]
ForceOpt = Annotated[bool, typer.Option("--force", help="replace output files that sdtools did "
                                        "not write")]
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
# the options every command that turns checkpoints into embeddings takes, defined once
SHARED = (("model", ModelOpt, None), ("device", DeviceOpt, None), ("batch_size", BatchOpt, 256),
          ("quiet", QuietOpt, False), ("no_cache", NoCacheOpt, False),
          ("skip_missing", SkipOpt, False), ("workers", WorkersOpt, None),
          ("precision", PrecisionOpt, None), ("force", ForceOpt, False))


_COMMAND = contextvars.ContextVar("sdtools_command", default=None)


def embedding_command(fn):
    """Give a command the shared options: ``fn(ctx, force, ...)`` receives a :class:`Ctx` built
    from ``--data`` and them (checked before the command runs) and ``force``."""
    import functools
    import inspect

    sig = inspect.signature(fn, eval_str=True)
    own = [p for n, p in sig.parameters.items() if n not in ("ctx", "force")]
    shared = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
              for n, a, d in SHARED]

    args = [p.name for p in own
            if any(isinstance(m, typer.models.ArgumentInfo) for m in
                   getattr(p.annotation, "__metadata__", ()))]

    @functools.wraps(fn)
    def command(**kw):
        opts = {n: kw.pop(n) for n, _, _ in SHARED}
        force = opts.pop("force")
        if fn.__name__ in CHECKPOINT_ONLY:  # embeddings are refused as such, first
            for n in args:
                _checkpoint_only(str(kw[n]), CHECKPOINT_ONLY[fn.__name__])
        _only_embeddings([kw[n] for n in args], kw.get("data"), opts["precision"])
        token = _COMMAND.set(fn.__name__)  # the kind of result its --json holds
        try:
            ctx = Ctx(kw.get("data"), **opts)
            return fn(ctx=ctx, force=force, **kw)
        finally:
            _COMMAND.reset(token)

    command.__signature__ = sig.replace(parameters=[
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + shared)
    command.__annotations__ = {p.name: p.annotation for p in own + shared}
    return command


def _only_embeddings(inputs, data, precision) -> None:
    """Options that act on checkpoints are refused where every input is saved embeddings
    (.npz), which carry their own probe set and precision: a flag is honoured or refused."""
    from .errors import UserError

    if not inputs or not all(str(x).lower().endswith(".npz") for x in inputs):
        return
    for flag, value in (("--data", data), ("--precision", precision)):
        if value is not None:
            raise UserError(f"{flag} {value} acts on checkpoints, and every input here is saved "
                            "embeddings (.npz), which carry their own probe set and "
                            f"precision; drop {flag}")


class Ctx:
    """Shared options for turning A/B arguments into embeddings."""

    def __init__(self, data, model, device, batch_size, quiet, no_cache, skip_missing,
                 workers, precision: str | None = "auto"):
        self.data_spec = data
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.quiet = quiet
        self.no_cache = no_cache
        self.skip_missing = skip_missing
        self.workers = workers
        from .models.extract import PRECISIONS

        precision = precision or "auto"
        if precision not in PRECISIONS:
            from .errors import UserError

            raise UserError(f"--precision {precision}: use fp32, bf16 or auto")
        self.precision = precision
        self._data = None
        from .dist import check_device

        check_device(device)
        if not no_cache:
            from .io import cannot_write_dir
            from .models.extract import default_cache_dir

            why = cannot_write_dir(default_cache_dir())
            if why is not None:  # a cache is a convenience: go on without it
                typer.echo(f"warning: the embedding cache ($SDTOOLS_CACHE) {why}; going on "
                           "without the cache", err=True)
                self.no_cache = True

    def data(self):
        from .data.specs import open_data

        if self._data is None:
            if not self.data_spec:
                from .errors import DataError

                raise DataError("a checkpoint needs a probe set: pass --data SPEC")
            self._data = open_data(self.data_spec, skip_missing=self.skip_missing)
            if self._data.skipped and not self.quiet:
                typer.echo(f"skipped {self._data.skipped} missing image(s)", err=True)
            if self._data.no_caption and not self.quiet:
                typer.echo(f"left out {self._data.no_caption} image(s) without a caption",
                           err=True)
        return self._data

    def embeddings(self, arg: str):
        from .data.base import loader_workers
        from .models.embeddings import Embeddings
        from .models.extract import embed

        if arg.lower().endswith(".npz"):
            return Embeddings.load(arg)
        return embed(arg, self.data(), batch_size=self.batch_size, device=self.device,
                     arch=self.model, cache=not self.no_cache, progress=not self.quiet,
                     num_workers=loader_workers(self.workers, self.data()),
                     precision=self.precision)

    def pair(self, a: str, b: str):
        from .errors import CheckpointError

        ea, eb = self.embeddings(a), self.embeddings(b)
        # the same network, however its file spelled the config: compare parameter shapes
        ca, cb = ea.meta.get("param_shapes"), eb.meta.get("param_shapes")
        if (ca and cb and ca != cb) or ea.dim != eb.dim:
            dims = (f" (embedding dimensions {ea.dim} and {eb.dim})" if ea.dim != eb.dim
                    else "")
            raise CheckpointError(
                f"A ({ea.meta.get('arch')}) and B ({eb.meta.get('arch')}) have different "
                f"architectures{dims}; compare checkpoints (or embeddings) of one architecture"
            )
        return ea, eb


def _write_json(path: Path, obj, kind: str | None = None) -> None:
    """A command's results as JSON, tagged with the tool and the kind of result (the
    command's name) so that a later --json knows the file again."""
    from .io import tag, write_json
    from .measures.summary import jsonable

    write_json(path, {"written_by": tag(), "kind": kind or _COMMAND.get(), **jsonable(obj)})


def _check_outputs(*paths, plot: Path | None = None, force: bool = False,
                   inputs=(), kind: str | None = None) -> None:
    """Output files must be writable where asked and must not replace a file sdtools did not
    write, or one of another kind (unless ``force``), nor an input of the command or each
    other, checked before any work; a figure's format from its suffix. ``paths``: JSON
    results of ``kind`` (default: the command's name)."""
    from .errors import UserError
    from .io import check_outputs

    kind = kind or _COMMAND.get()
    outs = [(p, "--json", kind) for p in paths] + [(plot, "--plot", "figure")]
    check_outputs(outs, inputs=inputs, force=force)
    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        kind = plot.suffix or "a file with no suffix"
        raise UserError(f"--plot {plot}: cannot draw a figure as {kind}; name it .png, .pdf or "
                        ".svg")


def _data_files(spec) -> list[str]:
    """The files a data SPEC names (a CSV, a Karpathy JSON): inputs, never outputs."""
    from .data.specs import parse_spec
    from .errors import UserError

    try:
        p = parse_spec(spec) if spec else None
    except UserError:
        return []
    return [p.args[0]] if p is not None and p.kind in ("csv", "karpathy") else []


def _console(quiet: bool):
    from rich.console import Console

    return Console(quiet=quiet, highlight=False)


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


def _title(a: str, b: str) -> str:
    """A figure title that tells the two checkpoints apart (run checkpoints share a name)."""
    def label(arg):
        p = Path(arg)
        if p.name == "model.pt" and p.parent.name.startswith("phase"):
            return "/".join(p.parts[-3:-1]) if p.parent.name != "phase0" else "phase0"
        return p.name

    return f"{label(a)} → {label(b)}"


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


CHECKPOINT_ONLY = {"zeroshot": "zeroshot", "linear_probe": "linear-probe"}  # embed themselves


def _checkpoint_only(ckpt: str, command: str) -> None:
    if ckpt.lower().endswith(".npz"):
        from .errors import UserError

        raise UserError(f"{command} needs a checkpoint, not saved embeddings ({ckpt}): it "
                        "embeds the labelled images (and the class prompts) itself")


def _labelled(ctx: Ctx, spec: str):
    """A labelled set opened with the command's --skip-missing, its skips reported."""
    from .data.specs import open_data

    data = open_data(spec, skip_missing=ctx.skip_missing)
    if data.skipped and not ctx.quiet:
        typer.echo(f"{spec}: skipped {data.skipped} missing image(s)", err=True)
    return data


def _pct(x) -> str:
    return "–" if x is None else f"{x:.2f}"


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

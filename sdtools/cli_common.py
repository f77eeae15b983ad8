"""What the ``sdtools`` commands share: the options every command that turns checkpoints into
embeddings takes (:func:`embedding_command`), the :class:`Ctx` built from them, the checks of
output files before any work, JSON results and the console. Heavy imports happen inside
functions so that ``--help`` stays fast.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Annotated

import typer

from .log import quiet_messages

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


def _title(a: str, b: str) -> str:
    """A figure title that tells the two checkpoints apart (run checkpoints share a name)."""
    def label(arg):
        p = Path(arg)
        if p.name == "model.pt" and p.parent.name.startswith("phase"):
            return "/".join(p.parts[-3:-1]) if p.parent.name != "phase0" else "phase0"
        return p.name

    return f"{label(a)} → {label(b)}"


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

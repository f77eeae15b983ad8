"""The ``modx`` command line: ``modx train CONFIG.toml`` and ``modx demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sdtools.log import quiet_messages
from sdtools.runner import add_version

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Continual CLIP training with Mod-X and its baselines.")

add_version(app, "modx", app.info.help)
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", callback=quiet_messages,
                                        help="no progress lines, bars or tables: notices and "
                                        "warnings only")]


def _methods(value: str | None) -> list[str] | None:
    return [m.strip() for m in value.split(",") if m.strip()] if value else None


@app.command()
def train(
    config: Annotated[Path | None, typer.Argument(help="TOML config (flags override it)")] = None,
    data: Annotated[str | None, typer.Option(help="training data SPEC")] = None,
    phases: Annotated[str | None, typer.Option(
        help="domain | contiguous:N | random:N | shards:N (wds)")] = None,
    methods: Annotated[str | None, typer.Option(help="comma-separated, e.g. finetune,modx")] = None,
    out: Annotated[str | None, typer.Option(help="run directory")] = None,
    model: Annotated[str | None, typer.Option(help="open_clip architecture or config JSON")] = None,
    init: Annotated[str | None, typer.Option(help="start phase 0 from this checkpoint")] = None,
    steps: Annotated[int | None, typer.Option(help="steps per phase 1..T")] = None,
    phase0_steps: Annotated[int | None, typer.Option(help="steps of phase 0")] = None,
    epochs: Annotated[float | None, typer.Option(help="epochs per phase, not steps")] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    alpha: Annotated[float | None, typer.Option(help="Mod-X weight")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option()] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 | amp_bf16")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="also save every K steps")] = None,
    workers: Annotated[int | None, typer.Option(min=0, help="DataLoader workers decoding "
                                                 "images (default: a share of the cores)")] = None,
    augment: Annotated[bool | None, typer.Option(
        "--augment/--no-augment", help="open_clip's training augmentation")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in --out")] = False,
    force: Annotated[bool, typer.Option(help="write the run into an --out folder that holds "
                                        "other files")] = False,
    quiet: QuietOpt = False,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="any setting, e.g. --set warmup=0.1 --set "
        "lwf.temperature=2 --set zscl.ensemble=false (repeatable; wins over the file)")] = None,
):
    """One continual run: phase 0, then phases 1..T for every method, evaluation and report."""
    from .config import flatten, from_dict, load, parse_sets
    from .errors import ConfigError

    overrides = dict(data=data, phases=phases, methods=_methods(methods), out=out, model=model,
                     init=init, steps=steps, phase0_steps=phase0_steps, epochs=epochs, lr=lr,
                     batch_size=batch_size, alpha=alpha, seed=seed, device=device,
                     precision=precision, checkpoint_every=checkpoint_every,
                     workers=workers, augment=augment, quiet=quiet or None)
    for k, v in flatten(parse_sets(set_), "--set").items():
        if k == "method_options" or overrides.get(k) is None:
            overrides[k] = v
        else:
            raise ConfigError(f"{k} is given both as --{k.replace('_', '-')} and --set; keep one")
    if config is not None:
        cfg = load(config, overrides)
    else:
        cfg = from_dict({}, "flags", {k: v for k, v in overrides.items() if v is not None})
    _run(cfg, resume, force)


def _run(cfg, resume: bool, force: bool = False) -> dict:
    from .train import Trainer

    report = Trainer(cfg, resume=resume, force=force).run()
    if report and not cfg.quiet:
        _summary(report, cfg.out)
    return report


def _summary(report: dict, out) -> None:
    from rich.console import Console
    from rich.table import Table

    from sdtools.report import summary_rows

    t = Table(title=f"continual run {out}")
    for col in ("method", "avg R@1", "BWT", "domain-0 R@1", "RAD img/txt", "SAM drift img/txt",
                "Mod-X rows kept"):
        t.add_column(col, justify="right" if col != "method" else "left")

    def f(x, nd=1):
        return "–" if x is None else f"{x:.{nd}f}"

    for r in summary_rows(report):
        t.add_row(r["method"], f(r["avg_r1"]), f(r["bwt"]),
                  f"{f(r['domain0_r1_phase0'])} → {f(r['domain0_r1_last'])}",
                  f"{f(r['rad_mean_image'])} / {f(r['rad_mean_text'])}",
                  f"{f(r['sam_drift_image'], 2)} / {f(r['sam_drift_text'], 2)}",
                  f(r["extras_mean"].get("selected_share"), 2))
    Console().print(t)
    print(f"report: {Path(out) / 'report.md'}")


@app.command()
def demo(
    out: Annotated[str, typer.Option(help="run directory")] = "runs/demo",
    preset: Annotated[str, typer.Option(help="default (the domains stress test, <10 min on 2 "
                                        "CPU cores), quick (<2 min) or shift")] = "default",
    methods: Annotated[str | None, typer.Option(help="comma-separated; default: finetune, "
                                                "modx, lwf, cumulative")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    resume: Annotated[bool, typer.Option(help="continue the run in --out")] = False,
    figures: Annotated[bool, typer.Option(help="draw the figures")] = True,
    force: Annotated[bool, typer.Option(help="write the run into an --out folder that holds "
                                        "other files (they are kept)")] = False,
    quiet: QuietOpt = False,
):
    """The built-in synthetic continual benchmark, end to end: train, evaluate, report, figures."""
    from .demo import demo_config

    cfg = demo_config(preset, out=out, seed=seed, methods=_methods(methods), quiet=quiet)
    report = _run(cfg, resume, force)
    if figures and report:
        from sdtools.io import refresh_dir
        from sdtools.runs import RunDir
        from sdtools.viz.phases import draw_all

        figs = RunDir(out).figures_dir
        with refresh_dir(figs) as tmp:  # a user's files among the figures are kept
            n = len(draw_all(report, tmp, run_dir=Path(out), progress=not quiet))
        if not quiet:
            print(f"figures: {n} files in {figs}")


@app.command()
def study(
    plan: Annotated[Path | None, typer.Argument(help="study plan (TOML); or --preset")] = None,
    out: Annotated[str, typer.Option(help="study directory")] = "runs/study",
    preset: Annotated[str | None, typer.Option(help="quick (minutes), shift or domains")] = None,
    list_cells: Annotated[bool, typer.Option("--list", help="print the cells and exit")] = False,
    cell: Annotated[int | None, typer.Option(help="run this cell alone (a job array)")] = None,
    force: Annotated[bool, typer.Option(help="write the study into an --out folder that holds "
                                        "other files")] = False,
    launcher: Annotated[str | None, typer.Option(
        help="submit phase-0 models, then cells, through submitit: local or slurm")] = None,
    partition: Annotated[str | None, typer.Option(help="Slurm partition")] = None,
    time_min: Annotated[int | None, typer.Option(help="time limit per job, minutes")] = None,
    gpus_per_cell: Annotated[int | None, typer.Option(help="GPUs per job")] = None,
    cpus_per_cell: Annotated[int | None, typer.Option(help="CPUs per job")] = None,
    parallel: Annotated[int | None, typer.Option(help="jobs at once")] = None,
    archive: Annotated[Path | None, typer.Option(
        help="write the study in --out to this folder without its runs (plan, timings, a "
             "small record per finished cell) and stop; a study run on a copy resumes")] = None,
    quiet: QuietOpt = False,
):
    """Seeds x methods x knobs: one run per cell, paired statistics, claims, figures."""
    from modx.errors import ConfigError

    from .demo import study_plan
    from .study import load_plan, run_study

    if plan is not None and preset is not None:
        raise ConfigError("give a study plan file or --preset (quick, shift, domains), not both")
    if plan is None and preset is None:
        raise ConfigError("give a study plan file (TOML) or --preset (quick, shift, domains)")
    p = load_plan(plan) if plan is not None else study_plan(preset)
    if list_cells:
        for c in p.cells():
            typer.echo(f"{c.index}\t{c.run_dir(Path(out))}")
        return
    if archive is not None:
        from .study_archive import write_archive

        if launcher is not None or cell is not None:
            raise ConfigError("--archive writes a study's archive and runs nothing; drop "
                              "--launcher and --cell")
        n = write_archive(p, out, archive, force=force)
        if not quiet:
            typer.echo(f"archive: {n} of {len(p.cells())} cells recorded in {archive}")
        return
    flags = dict(partition=partition, time_min=time_min, gpus_per_cell=gpus_per_cell,
                 cpus_per_cell=cpus_per_cell, parallel=parallel)
    given = [k for k, v in flags.items() if v is not None]
    if launcher is None and given:
        raise ConfigError(f"--{given[0].replace('_', '-')} is a launcher setting; add "
                          "--launcher local or --launcher slurm")
    if launcher is not None:
        from .launch import launch
        from .study import read_toml

        if cell is not None:
            raise ConfigError("--cell runs one cell here; --launcher submits them all: give one")
        opts = dict(read_toml(plan, "study plan").get("launcher", {})) if plan else {}
        opts.update({k: v for k, v in flags.items() if v is not None})
        res = launch(p, out, launcher, opts, force=force,
                     say=(lambda m: None) if quiet else typer.echo)
    else:
        res = run_study(p, out, cell=cell, progress=not quiet, say=typer.echo, force=force)
    if res and not quiet:
        for name, c in res["claims"].items():
            typer.echo(f"{name}: {c['verdict']}")
        typer.echo(f"study: {Path(out) / 'study.json'}, {Path(out) / 'report.md'}")
    elif not quiet:
        typer.echo("cells left to run; the study is aggregated when all are done")


def main(argv=None) -> None:
    from sdtools.runner import run_app

    run_app(app, argv, loggers=("sdtools", "modx"))


if __name__ == "__main__":
    main()

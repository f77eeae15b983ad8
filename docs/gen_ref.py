"""Reference pages generated from the code, never written by hand.

``docs/hooks.py`` calls these while MkDocs builds the site; run this file to print one page:
``python docs/gen_ref.py cli|config|methods``.

- :func:`cli_page`: every command of the ``sdtools`` and ``modx`` typer apps, with its help,
  arguments and options, read from click's command objects (what ``--help`` prints).
- :func:`config_page`: the training config schema, from ``modx.config.TrainConfig``'s fields,
  their defaults and the comments beside them, and the schema's models (``modx.config.SCHEMA``:
  each key's TOML section and allowed values; the models built from the methods' own
  ``options``).
- :func:`methods_page`: the methods table, from the method registry (discovery included).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys

import typer


def _cell(text) -> str:
    """One markdown table cell: no newlines, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _command_md(cmd, path: str, level: int) -> list[str]:
    # duck-typed: typer ships its own copy of click's classes
    ctx = cmd.context_class(cmd, info_name=path)
    lines = [f"{'#' * level} `{path}`", ""]
    if cmd.help:
        lines += [inspect.cleandoc(cmd.help).split("\f")[0].strip(), ""]
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    lines += ["```text", f"{path} {usage}".rstrip(), "```", ""]
    rows = []
    for p in cmd.params:
        if p.hidden:
            continue
        record = p.get_help_record(ctx)  # (names and metavar, help with default): --help's
        if record is None:
            continue
        names, text = record
        kind = "argument" if p.param_type_name == "argument" else "option"
        rows.append(f"| `{_cell(names)}` | {kind} | {_cell(text)} |")
    if rows:
        lines += ["| name | kind | meaning |", "| --- | --- | --- |", *rows, ""]
    if hasattr(cmd, "list_commands"):
        for name in cmd.list_commands(ctx):
            lines += _command_md(cmd.get_command(ctx, name), f"{path} {name}", level + 1)
    return lines


def cli_page() -> str:
    """The CLI reference: both typer apps, every command, as click sees them."""
    from modx.cli import app as modx_app
    from sdtools.cli import app as sdtools_app

    lines = ["# CLI reference", "",
             "Generated from the `sdtools` and `modx` typer apps by `docs/gen_ref.py` when the "
             "site is built: the same text as each command's `--help`.", "",
             "Both commands share the exit codes of [errors](../inputs.md#errors): "
             "0 success, 2 a user error (one line, `error: ...`), 130 Ctrl-C, 143 SIGTERM.", ""]
    for prog, app in (("sdtools", sdtools_app), ("modx", modx_app)):
        lines += _command_md(typer.main.get_command(app), prog, 2)
    return "\n".join(lines) + "\n"


_FIELD = re.compile(r"^    (\w+): ([^=]+?) = (.+?)(?:\s+#\s*(.*))?$")
_GROUP = re.compile(r"^    # (.*)$")


def _allowed(model, name: str) -> str:
    """A key's allowed values as the schema's model states them: its range, its choices."""
    import typing

    from modx.config_schema import bounds_text, type_text

    ann = model.model_fields[name].annotation
    if typing.get_origin(ann) is typing.Literal:
        return type_text(ann)
    bounds = bounds_text(model, name)
    hint = model.model_fields[name].description
    return f"{bounds} ({hint})" if bounds and hint else bounds or "–"


def config_page() -> str:
    """The training config schema: fields, types, defaults, comments; the TOML sections."""
    from modx import config, config_schema
    from modx.methods import METHODS

    src = inspect.getsource(config.TrainConfig).splitlines()
    fields = {f.name: f for f in dataclasses.fields(config.TrainConfig)}
    lines = ["# Config schema", "",
             "Generated from `modx.config.TrainConfig` (its fields, defaults and the comments "
             "beside them) and the schema's models (`modx.config.SCHEMA`: each key's section "
             "and allowed values) by `docs/gen_ref.py`. A TOML config sets these keys at the "
             "top level or in the section named; command-line flags and `--set KEY=VALUE` win "
             "over the file. A section the schema does not have, a key in the wrong section or "
             "a key given twice is refused, and so is a value of another type (`true` is no "
             "integer, `2.5` no batch size) or outside the allowed range, naming the key.", ""]
    group: list[str] = []
    rows: list[str] = []

    def flush():
        if rows:
            lines.extend(["| key | type | default | allowed | TOML section | meaning |",
                          "| --- | --- | --- | --- | --- | --- |", *rows, ""])
            rows.clear()

    for line in src:
        m = _GROUP.match(line)
        if m:
            if rows:
                flush()
                group.clear()
            group.append(m.group(1))
            continue
        m = _FIELD.match(line)
        if m and m.group(1) in fields:
            if group:
                text = " ".join(group)
                cut = min(i for i in (text.find(":"), text.find(" ("), len(text)) if i >= 0)
                head, rest = text[:cut].strip(), text[cut:].lstrip(":").strip()
                if rest.startswith("(") and rest.endswith(")"):
                    rest = rest[1:-1]
                lines += [f"## {head[:1].upper()}{head[1:]}", ""]
                if rest.strip():
                    lines += [rest.strip()[0].upper() + rest.strip()[1:] + ".", ""]
                group.clear()
            name, typ, default, note = m.groups()
            f = fields[name]
            if f.default is not dataclasses.MISSING:
                shown = repr(f.default)
            else:
                shown = repr(f.default_factory())  # type: ignore[misc]
            model = config_schema.TABLE_OF[name]
            key = model.model_fields[name].alias or name
            sec = "top level" if model.table is None else (
                f"`[{model.table}]`" if key == name else f"`[{model.table}]` as `{key}`")
            rows.append(f"| `{name}` | `{_cell(typ)}` | `{_cell(shown)}` | "
                        f"{_cell(_allowed(model, name))} | {sec} | {_cell(note or '')} |")
    flush()
    own = {n: c.options for n, c in METHODS.items() if c.options}
    lines += ["## Methods' own settings", "",
              "Declared by each method class (`options`), stored in `method_options` and "
              "written as the method's TOML section:", "",
              "| section | key | type | default |", "| --- | --- | --- | --- |"]
    for n, opts in own.items():
        model = config_schema.options_model(METHODS[n])
        for k, v in opts.items():
            kind = config_schema.type_text(model.model_fields[k].annotation)
            lines.append(f"| `[{n}]` | `{k}` | {kind} | `{_cell(repr(v))}` |")
    return "\n".join(lines) + "\n"


def methods_page() -> str:
    """The methods table, read from the registry (every discovered method and plug-in)."""
    from modx import config
    from modx.methods import METHODS

    lines = ["# Methods", "",
             "Generated from the method registry (`modx.methods.discover()`: every module of "
             "`modx.methods` and the `modx.methods` entry points installed) by "
             "`docs/gen_ref.py`. The teacher is the model a method distils from: `previous` "
             "(the phase's starting weights), `initial` (phase 0's model) or none.", "",
             "| method | what it does | knob a study sweeps | own settings (`[NAME]`) | "
             "teacher | reads items by index |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, cls in METHODS.items():
        doc = (inspect.getdoc(cls) or "").split("\n\n")[0]
        settings = list(cls.options) or list(config.SECTIONS.get(name, ()))
        own = ", ".join(f"`{s}`" for s in settings) or "–"
        knob = f"`{cls.knob}`" if cls.knob else "–"
        lines.append(f"| `{name}` | {_cell(doc)} | {knob} | {own} | {cls.teacher} | "
                     f"{'yes' if cls.needs_index else 'no'} |")
    return "\n".join(lines) + "\n"


def api_page() -> str:
    """The API reference: one mkdocstrings entry per public name (``sdtools.__all__``, read
    from where each is defined) and ``modx.losses.modx_alignment``."""
    import sdtools

    lines = ["# API reference", "",
             "Generated from the docstrings (numpy style) by mkdocstrings, one entry per name "
             "in `sdtools.__all__` and `modx.losses.modx_alignment`. Every name is imported "
             "from `sdtools` itself (`sdtools.procrustes`), lazily.", ""]
    for name in sdtools.__all__:
        lines += [f"## `sdtools.{name}`", "",
                  f"::: sdtools.{sdtools._EXPORTS[name]}.{name}", "    options:",
                  "      show_root_heading: false", "      heading_level: 3", ""]
    lines += ["## `modx.losses.modx_alignment`", "", "::: modx.losses.modx_alignment",
              "    options:", "      show_root_heading: false", "      heading_level: 3", ""]
    return "\n".join(lines) + "\n"


def validity_page() -> str:
    """The validity table: the last validity run recorded in ``benchmarks/RESULTS.md``, as
    ``benchmarks/validity.py`` printed it."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "benchmarks" / "RESULTS.md").read_text()
    sections = re.split(r"(?m)^## ", text)
    last = [s for s in sections if s.split("\n", 1)[0].rstrip().endswith("validity table")][-1]
    head, body = last.split("\n", 1)
    return ("# Validity table\n\n"
            "Planted truths (rotations, jitter, re-saves in isotropic, power-law and cone-shaped "
            "data) against what each measure reads, with the tolerance "
            "`tests/measures/test_validity.py` holds a smaller grid to. Copied by "
            "`docs/gen_ref.py` from the last validity run in `benchmarks/RESULTS.md` "
            f"(`python -m benchmarks.validity` appends a new one): {head.strip()}.\n\n"
            + body.strip() + "\n")


PAGES = {"reference/cli.md": cli_page, "reference/config.md": config_page,
         "reference/methods.md": methods_page,
         "reference/api.md": api_page, "reference/validity.md": validity_page}

if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "cli"
    sys.stdout.write(PAGES[f"reference/{which}.md"]())

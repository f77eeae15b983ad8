"""Every Python block on every page of the docs runs as written (each in a fresh folder).

A block preceded by the line ``<!-- slow -->`` is marked slow (``make test-all`` runs it).
The reference pages generated while the site builds (``docs/gen_ref.py``) are checked too:
each generator runs and names what it documents.
"""

import importlib.util
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"(<!-- slow -->\n)?```python\n(.*?)```", flags=re.S)


def _blocks():
    out = []
    for page in sorted(DOCS.rglob("*.md")):
        for i, m in enumerate(BLOCK.finditer(page.read_text())):
            marks = [pytest.mark.slow] if m.group(1) else []
            rel = page.relative_to(DOCS)
            out.append(pytest.param(rel, m.group(2), marks=marks, id=f"{rel}-block{i}"))
    return out


BLOCKS = _blocks()


def test_the_docs_have_python_blocks():
    assert BLOCKS


@pytest.mark.parametrize(("page", "code"), BLOCKS)
def test_docs_block_runs(page, code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SDTOOLS_CACHE", str(tmp_path / "cache"))
    exec(compile(code, str(DOCS / page), "exec"), {"__name__": "docs"})
    assert capsys.readouterr().out.strip()  # every block prints what it shows


def _gen_ref():
    spec = importlib.util.spec_from_file_location("gen_ref", DOCS / "gen_ref.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_reference_pages_cover_the_code():
    import sdtools
    from modx.cli import app as modx_app
    from modx.methods import METHODS
    from sdtools.cli import app as sdtools_app

    gen = _gen_ref()
    cli = gen.cli_page()
    for app, prog in ((sdtools_app, "sdtools"), (modx_app, "modx")):
        for command in app.registered_commands:
            name = command.name or command.callback.__name__.replace("_", "-")
            assert f"`{prog} {name}`" in cli, (prog, name)
    methods = gen.methods_page()
    assert all(f"| `{name}` |" in methods for name in METHODS)
    config = gen.config_page()
    assert "`lr`" in config and "`[modx]`" in config
    from modx.config_schema import SCHEMA, bounds_text

    for model in SCHEMA:  # every key, with the range its model allows
        for name in model.model_fields:
            row = next(r for r in config.splitlines() if r.startswith(f"| `{name}` |"))
            assert bounds_text(model, name) in row, row
    assert "| in [0, 1) (a share of the steps) | top level |" in config  # warmup
    assert "| `[lwf]` as `temperature` |" in config
    api = gen.api_page()
    assert all(f"## `sdtools.{name}`" in api for name in sdtools.__all__)
    assert "| holds |" in gen.validity_page()


def _shell_blocks():
    """The ``bash`` blocks marked ``<!-- runs -->``, in page order (later ones may read what
    earlier ones wrote: the quickstart's demo run, then sdtools on its outputs)."""
    out = []
    for page in sorted(DOCS.rglob("*.md")):
        out += [(page.relative_to(DOCS), m.group(1)) for m in
                re.finditer(r"<!-- runs -->\n```bash\n(.*?)```", page.read_text(), flags=re.S)]
    return out


@pytest.mark.slow
def test_docs_shell_blocks_run(tmp_path):
    """The marked shell blocks run in order in one folder, each command succeeding."""
    import os
    import subprocess
    import sys

    blocks = _shell_blocks()
    assert blocks
    env = {**os.environ, "SDTOOLS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "MPLBACKEND": "Agg", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for page, code in blocks:
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, (page, code, run.stderr[-2000:])

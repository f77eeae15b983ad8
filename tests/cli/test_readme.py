"""The README's Python blocks run as written (each in a fresh folder)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_blocks():
    assert BLOCKS


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SDTOOLS_CACHE", str(tmp_path / "cache"))
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert out.strip()  # every block prints what it shows


def test_every_public_name_documents_itself_with_an_example():
    """numpydoc: each public function has Parameters and Returns; every public name has an
    Examples section, which ``--doctest-modules`` runs."""
    import inspect

    import sdtools

    for name in sdtools.__all__:
        obj = getattr(sdtools, name)
        doc = inspect.getdoc(obj) or ""
        assert "Examples\n--------\n>>> " in doc, name
        if inspect.isfunction(obj):
            assert "Parameters\n----------\n" in doc and "Returns\n-------\n" in doc, name

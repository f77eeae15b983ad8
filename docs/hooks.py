"""MkDocs hooks: add the reference pages generated from the code (``docs/gen_ref.py``) to the
build, in memory; nothing generated is written into ``docs/`` or committed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from mkdocs.structure.files import File

_spec = importlib.util.spec_from_file_location("gen_ref", Path(__file__).with_name("gen_ref.py"))
gen_ref = importlib.util.module_from_spec(_spec)
sys.modules["gen_ref"] = gen_ref
_spec.loader.exec_module(gen_ref)


def on_files(files, config):
    for uri, make in gen_ref.PAGES.items():
        files.append(File.generated(config, uri, content=make()))
    return files

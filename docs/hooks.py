"""MkDocs hooks: add the reference pages generated from the code (``docs/gen_ref.py``) to the
build, in memory; nothing generated is written into ``docs/`` or committed. The figures at the
repository's root (``figures/*.png``, shown by the README and the results page) are added as
they are, under ``figures/``, so pages link them without a copy in ``docs/``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from mkdocs.structure.files import File

_spec = importlib.util.spec_from_file_location("gen_ref", Path(__file__).with_name("gen_ref.py"))
gen_ref = importlib.util.module_from_spec(_spec)
sys.modules["gen_ref"] = gen_ref
_spec.loader.exec_module(gen_ref)


ROOT = Path(__file__).resolve().parents[1]


def on_files(files, config):
    for uri, make in gen_ref.PAGES.items():
        files.append(File.generated(config, uri, content=make()))
    for png in sorted((ROOT / "figures").glob("*.png")):
        files.append(File(f"figures/{png.name}", src_dir=str(ROOT), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files

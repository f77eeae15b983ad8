"""MkDocs hooks: add the reference pages generated from the code (``docs/gen_ref.py``) to the
build, in memory; nothing generated is written into ``docs/`` or committed. The figures at the
repository's root (``figures/*.png``, shown by the README and the results page) are added as
they are, under ``figures/``, so pages link them without a copy in ``docs/``."""

from __future__ import annotations

import importlib.util
import re
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


_SEE_ALSO = re.compile(r'(<details class="see-also"[^>]*>\s*<summary>See Also</summary>\s*)'
                       r'<p>(.*?)</p>(\s*</details>)', re.S)
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data):")  # Sphinx roles, shown bare
_ENTRY = re.compile(r"^\s*([\w.]+(?:\s*,\s*[\w.]+)*)\s*(?::\s*(.*))?$")


def see_also_list(html: str) -> str:
    """numpydoc's See Also entries (``name : what it is``, one per line) as a list, each name
    linked to its entry on the page when the page has one, instead of one run-on paragraph."""
    ids = set(re.findall(r'id="([^"]+)"', html))

    def link(name: str) -> str:
        short = name.rpartition(".")[2]
        # the full dotted name where the page has it, else the shortest id ending in the name
        ends = sorted((i for i in ids if i.endswith("." + short) or i == short), key=len)
        target = name if name in ids else next(iter(ends), None)
        code = f"<code>{short}</code>"
        return f'<a href="#{target}">{code}</a>' if target else code

    def entries(m: re.Match) -> str:
        items, last = [], None
        for line in m.group(2).split("\n"):
            e = _ENTRY.match(line)
            bare = e is not None and e.group(2) is None and not line.rstrip().endswith(".")
            if e and (e.group(2) is not None or last is None or bare):
                names = ", ".join(link(n.strip()) for n in e.group(1).split(","))
                last = [names, e.group(2) or ""]
                items.append(last)
            elif last is not None:  # a description running on to the next line
                last[1] += " " + line.strip()
        body = "".join(f"<li>{n}{' — ' + _ROLE.sub('', d) if d else ''}</li>"
                       for n, d in items)
        return f"{m.group(1)}<ul>{body}</ul>{m.group(3)}"

    return _SEE_ALSO.sub(entries, html)


def on_page_content(html, page, config, files):
    return see_also_list(html)

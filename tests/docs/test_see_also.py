"""The site's See Also sections: one list item per entry, linked where the page has the name."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _hooks():
    spec = importlib.util.spec_from_file_location("doc_hooks", ROOT / "docs" / "hooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PAGE = """<h2 id="sdtools.measures.topology.topology_kept">topology_kept</h2>
<details class="see-also" open>
  <summary>See Also</summary>
  <p>topology_kept : The measure that returns it.
sam_drift : The self-angle drift over every pair,
    without a null.
principal_angles, procrustes : Two names,
one line.
deviation_report : The same from two :class:<code>Embeddings</code>.</p>
</details>"""


def test_see_also_becomes_a_list_with_links_where_the_page_has_the_name():
    out = _hooks().see_also_list(PAGE)
    body = out[out.index("<ul>"): out.index("</ul>")]
    items = body.split("<li>")[1:]
    assert len(items) == 4
    assert items[0].startswith('<a href="#sdtools.measures.topology.topology_kept">'
                               "<code>topology_kept</code></a> — The measure")
    assert "<code>sam_drift</code> — The self-angle drift over every pair, without a null." \
        in items[1] and "href" not in items[1]
    assert "<code>principal_angles</code>, <code>procrustes</code> — Two names, one line." \
        in items[2]
    assert ":class:" not in items[3] and "<code>Embeddings</code>" in items[3]
    assert "<p>" not in out.split("See Also</summary>")[1]


def test_see_also_prefers_the_full_name_and_keeps_bare_entries():
    page = """<h2 id="sdtools.report.geometry">g</h2><h2 id="sdtools.pairwise.geometry">g</h2>
<details class="see-also" open>
  <summary>See Also</summary>
  <p>sdtools.pairwise.geometry : The comparison.
rotation_report
deviation_report : The other one.</p>
</details>"""
    out = _hooks().see_also_list(page)
    items = out[out.index("<ul>"): out.index("</ul>")].split("<li>")[1:]
    assert len(items) == 3
    assert items[0].startswith('<a href="#sdtools.pairwise.geometry">')
    assert items[1] == "<code>rotation_report</code></li>"

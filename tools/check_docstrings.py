"""numpydoc-style validation of the public names: ``sdtools.__all__`` and
``modx.losses.modx_alignment``.

    python tools/check_docstrings.py            # list every problem, exit 1 if any
    python tools/check_docstrings.py --summary  # one line per name

What is checked, per name:

- a docstring with a summary line and an ``Examples`` section;
- functions (and classes' ``__init__`` signatures): a ``Parameters`` section naming every
  signature parameter (``self``, ``*args`` and ``**kwargs`` aside), in signature order and no
  others; a ``Returns`` section;
- ``Raises`` where the function's own body raises (a ``raise`` statement in its source);
- ``See Also``;
- ``References`` for the measures of ``sdtools.measures`` (the paper they implement).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import sys
import textwrap
from pathlib import Path

# check the tree this file sits in: run as a script, sys.path[0] is tools/, and an editable
# install of another checkout would otherwise be the sdtools imported
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECTION = re.compile(r"^(\w[\w ]*)\n(-{3,})$", flags=re.M)


def sections(doc: str) -> dict[str, str]:
    """A numpy docstring's sections by title (``"summary"`` for the text before the first)."""
    out, last, title = {}, 0, "summary"
    for m in SECTION.finditer(doc):
        out[title] = doc[last:m.start()]
        title, last = m.group(1).strip(), m.end()
    out[title] = doc[last:]
    return out


def documented_params(text: str) -> list[str]:
    names = []
    for line in text.splitlines():
        if line and not line[0].isspace():
            for part in line.split(":")[0].split(","):
                part = part.strip().lstrip("*")
                if part:
                    names.append(part)
    return names


def _signature_params(obj) -> list[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values() if p.name not in ("self", "cls")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _raises(obj) -> bool:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError, SyntaxError):
        return False
    return any(isinstance(node, ast.Raise) for node in ast.walk(tree))


def problems(qualname: str, obj) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    if not doc:
        return ["no docstring"]
    found = sections(doc)
    out = []
    if not found.get("summary", "").strip():
        out.append("no summary line")
    if "Examples" not in found:
        out.append("no Examples section")
    is_function = inspect.isfunction(obj)
    if is_function:
        wanted = _signature_params(obj)
        have = documented_params(found.get("Parameters", ""))
        missing = [p for p in wanted if p not in have]
        extra = [p for p in have if p not in wanted]
        if "Parameters" not in found and wanted:
            out.append("no Parameters section")
        elif missing:
            out.append(f"Parameters lacks {', '.join(missing)}")
        if extra:
            out.append(f"Parameters names {', '.join(extra)}, not in the signature")
        if not missing and not extra and [p for p in have if p in wanted] != wanted:
            out.append("Parameters not in signature order")
        if "Returns" not in found and "Yields" not in found:
            out.append("no Returns section")
        if _raises(obj) and "Raises" not in found:
            out.append("raises but has no Raises section")
    if "See Also" not in found:
        out.append("no See Also section")
    module = getattr(obj, "__module__", "") or ""
    if module.startswith("sdtools.measures.") and is_function and "References" not in found:
        out.append("a measure without References")
    return out


def public_names():
    import sdtools
    from modx.losses import modx_alignment

    for name in sdtools.__all__:
        yield f"sdtools.{name}", getattr(sdtools, name)
    yield "modx.losses.modx_alignment", modx_alignment


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--summary", action="store_true", help="one line per name")
    args = ap.parse_args(argv)
    total = bad = 0
    for qualname, obj in public_names():
        total += 1
        found = problems(qualname, obj)
        if found:
            bad += 1
            if args.summary:
                print(f"{qualname}: {len(found)} problems")
            else:
                print(f"{qualname}:\n  " + "\n  ".join(found))
    print(f"{bad} of {total} public names have problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

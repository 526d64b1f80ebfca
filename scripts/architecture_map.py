"""Write (or check) the file map in docs/ARCHITECTURE.md: one line per package and module of engine/ and gui/,
from the first sentence of each module's docstring, so the map cannot drift from the code.

    python scripts/architecture_map.py          # rewrite the map between the markers
    python scripts/architecture_map.py --check  # exit 1 when the map is out of date (the test suite runs this)
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
BEGIN, END = "<!-- map:begin (scripts/architecture_map.py) -->", "<!-- map:end -->"
WIDTH = 44


def first_sentence(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    match = re.match(r"(.+?[.!?])(\s+[A-Z(`]|$)", paragraph)
    sentence = match.group(1) if match else paragraph
    return sentence.rstrip(":") if sentence else "(no docstring: write one)"


def build_map() -> str:
    lines = ["```"]
    for package in ("engine", "gui"):
        paths = sorted((ROOT / package).rglob("*.py"), key=lambda p: (p.parent.parts, p.name != "__init__.py", p.name))
        for path in paths:
            relative = path.relative_to(ROOT)
            name = f"{relative.parent}/" if path.name == "__init__.py" else str(relative)
            depth = len(relative.parts) - (2 if path.name == "__init__.py" else 1)  # packages the entry is inside
            indent = "  " * depth
            lines.append(f"{indent}{name:<{WIDTH - len(indent)}} {first_sentence(path)}")
    lines.append("```")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when the map in the doc is out of date")
    args = parser.parse_args()
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + "\n" + build_map() + "\n" + text[end:]
    if args.check:
        if new != text:
            print(f"{DOC.relative_to(ROOT)}: the file map is out of date; run python scripts/architecture_map.py")
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

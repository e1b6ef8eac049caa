"""List the functions under loyalty/ longer than 60 lines; exit 1 if there are any.

    python scripts/long_functions.py [--max 60] [PATH ...]

A function's length is end_lineno - lineno + 1 of its `def` (decorators not counted, its
docstring and nested functions included). Nested functions are checked on their own too.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 60


def long_functions(path: Path, max_lines: int) -> Iterator[tuple[int, str, int]]:
    """(line, qualified name, length) of each function in `path` longer than `max_lines`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[int, str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                length = (child.end_lineno or child.lineno) - child.lineno + 1
                if length > max_lines:
                    yield child.lineno, name, length
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max", type=int, default=MAX_LINES, help="longest allowed, in lines")
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "loyalty"])
    args = parser.parse_args(argv)
    files = sorted(f for p in args.paths for f in (p.rglob("*.py") if p.is_dir() else [p]))
    found = 0
    for path in files:
        shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
        for line, name, length in long_functions(path, args.max):
            print(f"{shown}:{line}: {name} is {length} lines (max {args.max})")
            found += 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

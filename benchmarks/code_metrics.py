"""Size of the package's code (issue 24's closing note): lines, the functions over 60 lines and those with more
than 8 parameters, and the largest files. Run: ``python benchmarks/code_metrics.py [package-folder]``."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            params = [*a.posonlyargs, *a.args, *a.kwonlyargs]
            count = len([p for p in params if p.arg not in ("self", "cls")])
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("package", nargs="?", default="yolorep")
    parser.add_argument("--max-lines", type=int, default=60)
    parser.add_argument("--max-params", type=int, default=8)
    args = parser.parse_args()
    total, files, long, wide = 0, [], [], []
    for path in sorted(Path(args.package).rglob("*.py")):
        text = path.read_text()
        lines = len(text.splitlines())
        total += lines
        files.append((lines, str(path)))
        for name, line, length, params in functions(ast.parse(text)):
            if length > args.max_lines:
                long.append((length, f"{path}:{line} {name}"))
            if params > args.max_params:
                wide.append((params, f"{path}:{line} {name}"))
    print(f"{len(files)} modules, {total} lines")
    print(
        f"files over 400 lines: {sum(n > 400 for n, _ in files)}; largest: "
        + ", ".join(f"{p} ({n})" for n, p in sorted(files, reverse=True)[:3])
    )
    print(f"functions over {args.max_lines} lines: {len(long)}")
    for n, where in sorted(long, reverse=True):
        print(f"  {n:4d}  {where}")
    print(f"functions with more than {args.max_params} parameters: {len(wide)}")
    for n, where in sorted(wide, reverse=True):
        print(f"  {n:4d}  {where}")


if __name__ == "__main__":
    main()

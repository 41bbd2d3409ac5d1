"""Count lmscale's import cycles and its function-local `lmscale` imports, from the source (ast only).

    python benchmarks/import_graph.py [--verbose]

Every `import` / `from ... import` of an `lmscale` module is an edge, wherever it sits (module level,
inside a function, under `if TYPE_CHECKING:`), because each one is a dependency a reader must follow.
A cycle is a strongly connected component of more than one module (or a module importing itself).
A function-local import is an import statement naming `lmscale` inside a `def` (torch and other third-party imports
inside functions are not counted: they are lazy on purpose).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "lmscale"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for p in (SRC / PACKAGE).rglob("*.py")
        if "hf_template" not in p.parts  # shipped as files into exported checkpoints, never imported
    }


def _resolve(target: str, names: list[str], known: dict[str, Path]) -> set[str]:
    """The lmscale modules that `from target import names` (or `import target`) loads."""
    out: set[str] = set()
    for name in names:
        if f"{target}.{name}" in known:
            out.add(f"{target}.{name}")
        elif target in known:
            out.add(target)
    if not names and target in known:
        out.add(target)
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> tuple[set[str], int]:
    """The lmscale modules one module imports, and how many of its import statements naming lmscale
    sit inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    n_local = 0

    def visit(node: ast.AST, in_function: bool) -> None:
        nonlocal n_local
        for child in ast.iter_child_nodes(node):
            local = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                mine = [a.name for a in child.names if a.name.split(".")[0] == PACKAGE]
                for target in mine:
                    found.update(_resolve(target, [], known))
                n_local += bool(mine) and local
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] == PACKAGE:
                    found.update(_resolve(target, [a.name for a in child.names], known))
                    n_local += local
            visit(child, local)

    visit(tree, False)
    return found, n_local


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(sorted(component))
    return out


def main(verbose: bool = False) -> tuple[int, int]:
    known = modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    n_local = 0
    for name, path in known.items():
        targets, local = imports(name, path, known)
        n_local += local
        for target in targets:
            # a package's __init__ importing its own submodules is how packages work, not a cycle
            if target != name and not (path.name == "__init__.py" and target.startswith(name + ".")):
                graph[name].add(target)
    # importing a submodule runs its package's __init__ too, which the edges above leave out on purpose
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    print(f"import cycles: {len(cycles)}")
    print(f"function-local lmscale imports: {n_local}")
    if verbose:
        for c in sorted(cycles, key=len, reverse=True):
            print(f"  cycle of {len(c)}: {' '.join(m.removeprefix('lmscale.') for m in c)}")
    return len(cycles), n_local


if __name__ == "__main__":
    main(verbose="--verbose" in sys.argv[1:])

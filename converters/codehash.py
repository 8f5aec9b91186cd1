"""Which source code an artifact depends on, found from the code itself: the project modules a builder
imports, transitively, including imports inside functions (the suite defers heavy imports). Cache keys hash
those files, so no hand-kept list can forget one."""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "converters", "compare", "diagnose", "report", "harness")


def _module_file(name: str, root: Path) -> Path | None:
    """The source file of project module `name` under `root` (a package's __init__.py), or None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str, root: Path) -> set[str]:
    """Project modules named by any import statement in `path` (top level or inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            found.add(base)
            # `from pkg import name` imports module pkg.name when there is one
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if _module_file(name, root)}


def closure(modules: tuple[str, ...], root: Path | None = None) -> list[Path]:
    """Source files of `modules` and every project module they import, transitively."""
    root = root or ROOT
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name, root)
        if path is None:
            raise ValueError(f"{name!r} is not a module of this project under {root}")
        seen[name] = path
        todo.extend(_imports(path, name, root) - seen.keys())
    return sorted(set(seen.values()))


@lru_cache(maxsize=None)
def digest(modules: tuple[str, ...], extra_files: tuple[str, ...] = (), root: Path | None = None) -> str:
    """sha256 over the closure of `modules` (relative paths and bytes) plus `extra_files` (plug-in files
    from outside the project)."""
    root = root or ROOT
    h = hashlib.sha256()
    for path in closure(modules, root):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    for extra in extra_files:
        h.update(Path(extra).read_bytes())
    return h.hexdigest()[:16]


def external_file(function) -> Path | None:
    """The file a function (or class) comes from when it is not a module of this project (a plug-in)."""
    import inspect

    path = Path(inspect.getsourcefile(function)).resolve()
    return None if path.is_relative_to(ROOT) else path


def function_digest(function) -> str:
    """Digest of the code a function depends on: its module's closure, or for a plug-in file from outside
    the project, the file itself plus the closure of the project modules it imports."""
    outside = external_file(function)
    if outside is None:
        return digest((function.__module__,))
    imported = tuple(sorted(_imports(outside, function.__module__, ROOT)))
    return digest(imported, (str(outside),))

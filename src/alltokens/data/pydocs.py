"""A real English corpus with no network: the docstrings of the installed Python standard library.

The library's `.py` files are parsed with `ast` (never imported, so nothing runs) and every module,
class and function docstring is collected in a fixed order: files sorted by path, nodes in `ast.walk`
order. Test suites, demos and third-party packages are skipped, exact duplicates are dropped, and
documents are separated by one blank line. About 1.8 MB on CPython 3.11; nothing is copied into the
repository, the corpus is rebuilt from whatever Python runs it.
"""

from __future__ import annotations

import ast
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from alltokens.io.checkpoint import atomic_write

# Directories whose docstrings are not prose about the library: test suites, demos, bundled third-party
# code, and the IDLE application.
SKIP_DIRS = frozenset(
    {
        "site-packages",
        "dist-packages",
        "test",
        "tests",
        "idle_test",
        "idlelib",
        "turtledemo",
        "lib2to3",
        "__pycache__",
        "__phello__",
        "ensurepip",
    }
)
DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def source_files(root: Path) -> list[Path]:
    """The standard library's `.py` files in sorted order, without tests, demos and site-packages."""
    files = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if any(p in SKIP_DIRS or p.startswith("plat-") for p in parts[:-1]):
            continue
        if parts[-1].startswith("test_"):
            continue
        files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def docstrings(path: Path) -> Iterator[str]:
    """Every docstring in one file; files that do not parse (Python 2 leftovers) yield nothing."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, DOCUMENTED):
            doc = ast.get_docstring(node, clean=True)
            if doc and doc.strip():
                yield doc.strip()


def pydocs_corpus(root: Path | None = None) -> str:
    """The deduplicated docstrings of the standard library under `root`, one blank line between each."""
    root = stdlib_dir() if root is None else Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"standard library directory {root} not found")
    seen: set[str] = set()
    docs = []
    for path in source_files(root):
        for doc in docstrings(path):
            if doc not in seen:
                seen.add(doc)
                docs.append(doc)
    return "\n\n".join(docs) + "\n"


def write_pydocs_corpus(out: str | Path, root: Path | None = None) -> int:
    """Write the corpus to `out` as UTF-8 (atomically); returns its size in bytes."""
    data = pydocs_corpus(root).encode("utf-8")
    atomic_write(out, lambda p: p.write_bytes(data))
    return len(data)

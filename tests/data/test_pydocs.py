"""The standard-library docstring corpus: parsed, never imported; filtered, ordered, deduplicated."""

from __future__ import annotations

from pathlib import Path

import pytest

from alltokens.data.pydocs import pydocs_corpus, source_files, write_pydocs_corpus


def make_stdlib(root: Path) -> Path:
    """A fake standard library with the cases the corpus builder must handle."""
    files = {
        "zeta.py": '"""Zeta module."""\n',
        "alpha.py": (
            '"""Alpha module.\n\n    Indented second paragraph.\n"""\n'
            "class A:\n    '''Class A.'''\n    def f(self):\n        '''Method f.'''\n"
            "async def g():\n    '''Coroutine g.'''\n"
            "raise SystemExit('importing this file would stop the test run')\n"
        ),
        "dup.py": '"""Zeta module."""\ndef h():\n    """Function h."""\n',
        "broken.py": "def (:\n    '''Python 2 or broken.'''\n",
        "pkg/__init__.py": '"""A package."""\n',
        "pkg/test_thing.py": '"""A test file."""\n',
        "test/support.py": '"""The test suite."""\n',
        "idlelib/editor.py": '"""The IDLE editor."""\n',
        "site-packages/numpy/core.py": '"""Third-party code."""\n',
        "nodoc.py": "x = 1\n",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_corpus_collects_docstrings_in_order_without_tests_or_duplicates(tmp_path):
    root = make_stdlib(tmp_path / "lib")
    corpus = pydocs_corpus(root)
    expected = (
        "Alpha module.\n\nIndented second paragraph.\n\n"
        "Class A.\n\nCoroutine g.\n\nMethod f.\n\n"
        "Zeta module.\n\nFunction h.\n\n"  # dup.py comes before zeta.py; its copy is the one kept
        "A package.\n"
    )
    assert corpus == expected
    for excluded in ("test suite", "A test file", "IDLE", "Third-party", "Python 2"):
        assert excluded not in corpus


def test_source_files_are_sorted_and_filtered(tmp_path):
    root = make_stdlib(tmp_path / "lib")
    names = [p.relative_to(root).as_posix() for p in source_files(root)]
    assert names == ["alpha.py", "broken.py", "dup.py", "nodoc.py", "pkg/__init__.py", "zeta.py"]


def test_write_returns_the_byte_count(tmp_path):
    root = make_stdlib(tmp_path / "lib")
    out = tmp_path / "corpus.txt"
    n = write_pydocs_corpus(out, root)
    assert n == out.stat().st_size == len(pydocs_corpus(root).encode())


def test_missing_stdlib_directory_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        pydocs_corpus(tmp_path / "nowhere")


@pytest.mark.slow
def test_real_standard_library_gives_a_megabyte_of_english(tmp_path):
    out = tmp_path / "pydocs.txt"
    n = write_pydocs_corpus(out)
    text = out.read_text(encoding="utf-8")
    assert n > 1_000_000
    assert "Return" in text and "\n\n" in text
    assert "Join two or more pathname components" in text  # posixpath.join

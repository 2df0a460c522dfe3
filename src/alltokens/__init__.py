"""alltokens: everything is tokens, and one transformer reads and writes them all.

`alltokens.load(DIR)` is the one entry point to every model kind; it is imported lazily so that
`import alltokens` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load"]


def load(path: str, **kwargs: Any) -> Any:
    """Load our checkpoint or a Hugging Face directory; see `alltokens.io.load.load`."""
    from alltokens.io.load import load as _load

    return _load(path, **kwargs)

"""The error types a user can fix. The CLI prints them as one line instead of a traceback."""

from __future__ import annotations

from alltokens.io.checkpoint import CheckpointError
from alltokens.nn.config import ConfigError
from alltokens.tokenizers.image import ImageError

USER_ERRORS: tuple[type[BaseException], ...] = (
    CheckpointError,
    ConfigError,
    ImageError,
    ValueError,
    FileNotFoundError,
    IsADirectoryError,
    UnicodeDecodeError,
)

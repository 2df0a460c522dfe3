"""Text tokenizers: one `Tokenizer` over any Hugging Face `tokenizer.json` (bytes, our BPE, GPT-2,
Llama, BERT). Our own tokenizers put the 256 bytes at ids 0..255 and `SPECIAL_TOKENS` last.

Image tokenizers: files -> RGB -> pixels (`image.py`), pixels <-> patch tokens (`patches.py`), and
AnyRes tiles within an image-token budget (`tiling.py`)."""

from __future__ import annotations

from alltokens.tokenizers.bpe import byte_tokenizer, train_bpe
from alltokens.tokenizers.image import ImageError, fit_image, load_image, to_pixels
from alltokens.tokenizers.load import load_tokenizer
from alltokens.tokenizers.patches import patchify, unpatchify
from alltokens.tokenizers.special import SPECIAL_TOKENS
from alltokens.tokenizers.text import Tokenizer, visible
from alltokens.tokenizers.tiling import TileLayout, choose_layout, tile_image

__all__ = [
    "SPECIAL_TOKENS",
    "ImageError",
    "TileLayout",
    "Tokenizer",
    "byte_tokenizer",
    "choose_layout",
    "fit_image",
    "load_image",
    "load_tokenizer",
    "patchify",
    "tile_image",
    "to_pixels",
    "train_bpe",
    "unpatchify",
    "visible",
]

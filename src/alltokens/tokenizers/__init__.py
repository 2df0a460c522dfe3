"""Text tokenizers: one `Tokenizer` over any Hugging Face `tokenizer.json` (bytes, our BPE, GPT-2,
Llama, BERT). Our own tokenizers put the 256 bytes at ids 0..255 and `SPECIAL_TOKENS` last."""

from __future__ import annotations

from alltokens.tokenizers.bpe import byte_tokenizer, train_bpe
from alltokens.tokenizers.load import load_tokenizer
from alltokens.tokenizers.special import SPECIAL_TOKENS
from alltokens.tokenizers.text import Tokenizer, visible

__all__ = ["SPECIAL_TOKENS", "Tokenizer", "byte_tokenizer", "load_tokenizer", "train_bpe", "visible"]

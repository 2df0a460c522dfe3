"""Our reserved special tokens, and the names by which foreign tokenizers spell bos, eos and pad.

Layout of every tokenizer we build (byte or BPE): ids 0..255 are the 256 raw bytes in byte order,
learned merges follow in the order they were learned, and SPECIAL_TOKENS take the last ids in the
order listed here. So a byte id means the same in every one of our tokenizers, and a special token's
id is `vocab_size - len(SPECIAL_TOKENS) + SPECIAL_TOKENS.index(token)`.
"""

from __future__ import annotations

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|bos|>",
    "<|eos|>",
    "<|pad|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
    "<|image|>",
    "<|image_start|>",
    "<|image_end|>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<|video_start|>",
    "<|video_end|>",
)

# When a tokenizer.json comes without tokenizer_config.json / special_tokens_map.json naming its roles,
# the first of these names found in its vocabulary is used (ours, Llama, Llama 3, GPT-2, BERT, ...).
FALLBACK_NAMES: dict[str, tuple[str, ...]] = {
    "bos": ("<|bos|>", "<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>", "[CLS]", "<|endoftext|>"),
    "eos": ("<|eos|>", "</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "[SEP]"),
    "pad": ("<|pad|>", "<pad>", "[PAD]", "<|padding|>"),
}
ROLES: tuple[str, ...] = tuple(FALLBACK_NAMES)

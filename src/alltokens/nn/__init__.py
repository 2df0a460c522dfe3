"""The one transformer core and its parts."""

from alltokens.nn.config import Config, ConfigError, TransformerConfig
from alltokens.nn.embedding import Embeddings
from alltokens.nn.kv_cache import KVCache
from alltokens.nn.transformer import Transformer

__all__ = ["Config", "ConfigError", "Embeddings", "KVCache", "Transformer", "TransformerConfig"]

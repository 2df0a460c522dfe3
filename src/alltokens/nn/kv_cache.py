"""A preallocated key/value cache for incremental decoding.

All layers share one buffer per tensor, allocated once for `max_len` slots, so decoding never
reallocates or concatenates. Rows of a batch with different prompt lengths are left-padded, which keeps
one `length` for the whole batch; the padding slots are hidden by the attention mask the caller builds
(see `generate/engine.py`).

Shape notation: L layers, B batch, H key/value heads, S slots, D head dim.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        kv_heads: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        shape = (num_layers, batch_size, kv_heads, max_len, head_dim)  # (L, B, H, S, D)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.length = 0  # slots filled so far, the same for every row

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, H, T, D) at the next T slots; return all filled slots (B, H, length + T, D)."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache is full: {end} tokens do not fit in {self.max_len} slots")
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, n: int) -> None:
        """Called once per forward, after every layer wrote its n new slots."""
        self.length += n

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep only the given batch rows (e.g. drop finished sequences)."""
        self.k = self.k[:, rows]
        self.v = self.v[:, rows]

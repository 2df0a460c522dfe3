"""Rotary positions in n dimensions: scores depend only on the offset between two positions."""

import pytest
import torch

from alltokens.nn.config import ConfigError, TransformerConfig
from alltokens.nn.rope import RotaryEmbedding, apply_rope


def score(rope: RotaryEmbedding, q: torch.Tensor, k: torch.Tensor, pq, pk) -> torch.Tensor:
    """q . k after rotating q to position pq and k to position pk (each a tuple of coordinates)."""
    positions = torch.tensor([[pq, pk]])  # (1, 2, n)
    cos, sin = rope(positions)  # (1, 1, 2, D)
    x = torch.stack([q, k])[None, None]  # (1, 1, 2, D)
    rotated = apply_rope(x, cos, sin)[0, 0]
    return rotated[0] @ rotated[1]


def test_2d_scores_depend_only_on_the_offset_in_rows_and_columns():
    torch.manual_seed(0)
    rope = RotaryEmbedding(head_dim=16, max_positions=32, theta=100.0, dims=2)
    q, k = torch.randn(16), torch.randn(16)
    base = score(rope, q, k, (3, 5), (1, 2))
    shifted = score(rope, q, k, (3 + 7, 5 + 4), (1 + 7, 2 + 4))
    torch.testing.assert_close(shifted, base, atol=1e-4, rtol=0)
    # a move along either axis alone changes the score: both coordinates are seen
    assert (score(rope, q, k, (4, 5), (1, 2)) - base).abs() > 1e-3
    assert (score(rope, q, k, (3, 6), (1, 2)) - base).abs() > 1e-3


def test_2d_rope_with_equal_coordinates_is_1d_rope_of_half_the_width_per_axis():
    """Axis a rotates its own D/2n frequencies: with col fixed at 0, only the row frequencies turn."""
    rope2 = RotaryEmbedding(head_dim=16, max_positions=8, theta=10000.0, dims=2)
    rope1 = RotaryEmbedding(head_dim=8, max_positions=8, theta=10000.0)
    cos2, _ = rope2(torch.tensor([[[5, 0]]]))  # (1, 1, 1, 16)
    cos1, _ = rope1(torch.tensor([[5]]))  # (1, 1, 1, 8)
    torch.testing.assert_close(cos2[..., :4], cos1[..., :4])  # the row group
    torch.testing.assert_close(cos2[..., 4:8], torch.ones(1, 1, 1, 4))  # the column group, at 0


def test_positions_of_the_wrong_shape_and_odd_widths_are_refused():
    rope = RotaryEmbedding(head_dim=16, max_positions=8, theta=100.0, dims=2)
    with pytest.raises(ValueError, match=r"\(B, T, 2\)"):
        rope(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ConfigError, match="divisible by 4"):
        TransformerConfig(hidden_size=24, num_attention_heads=4, rope_dims=2)  # head_dim 6

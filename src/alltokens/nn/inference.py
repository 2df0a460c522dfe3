"""Inference-only CPU speed-up: linear layers whose weights are pre-packed for oneDNN.

Why. Decoding one token multiplies a handful of activation rows by every weight matrix once, so on CPU
the time is the time to stream the weights from memory (GPT-2-small: 0.5 GB of fp32 per token);
torch.profiler puts ~95% of a decode step in `addmm`/`mm` and ~3% in Python. How fast a kernel streams
a (out, in) row-major weight decides decode speed, and plain `F.linear` is far from the machine's
limit. Measured on the 2-core AMD EPYC dev machine (torch 2.13 CPU, MKL + oneDNN, 2 threads), reading
GPT-2-small's 48 block matrices (340 MB) per token, best of interleaved repeats, GB/s:

| kernel                                        | 1 row | 8 rows |
|-----------------------------------------------|-------|--------|
| `F.linear(x, W, b)` (what `nn.Linear` does)   | 13-14 | 10     |
| `torch.addmm(b, x, W.t().contiguous())`       | 17    | 8      |
| oneDNN, weight packed with batch hint 1       | 27    | 17     |
| oneDNN, weight packed with batch hint 8       | 27    | 23-26  |

and for the 50257 x 768 LM head (154 MB): `F.linear` 13 (1 row) / 6 (8 rows), transposed weight 22-24
/ 7, oneDNN packed with hint 8 24-25 / 24-26. A plain sum over 500 MB reaches 33 GB/s. So every linear
layer becomes a `PackedLinear` holding its weight in oneDNN's blocked layout (reordered once, hint
`PACK_ROWS`), which serves 1 and 8 rows near the bandwidth limit and any other row count correctly.

Small layers. A oneDNN call costs ~15 us more than `F.linear` (1 thread, 14-18 us against 4 us for a
192 x 64 weight), which only pays off once streaming the weight takes longer than that: up to about 1 MiB of fp32
`F.linear` wins (512 x 512: 26 us against 35 us), so weights that small are left alone (`MIN_ELEMENTS`).

Caveat, also measured: with 2 threads on a machine whose cores are busy with other processes, oneDNN's
kernels slow down ~10x (0.5 GB/s against 4 GB/s for `F.linear`), because libgomp's waiting threads spin;
`OMP_WAIT_POLICY=PASSIVE` in the environment removes the collapse.

Inference only: the packed op has no autograd formula (a backward through it is silently wrong), so a
`PackedLinear` refuses to run while gradients are enabled. Everything else is untouched: the token
embedding a tied LM head shares its weight with stays as it is (the head gets its own packed copy, a
buffer, so `parameters()` still counts each weight once), `state_dict()` gives the same dense tensors as
before, and where packing does not apply (no oneDNN, a weight not fp32 or not on the CPU, a subclass of
`nn.Linear` such as a LoRA wrapper) the model is returned unchanged.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch import nn

PACK_ROWS = 8  # oneDNN's row-count hint when packing: 8 keeps both 1 and 8 rows fast (table above)
MIN_ELEMENTS = 1 << 18  # weights up to this size (1 MiB of fp32) stay `nn.Linear`: "Small layers" above


def can_pack(weight: torch.Tensor) -> bool:
    """Whether this weight can use oneDNN packing: fp32, on the CPU, with oneDNN built in."""
    return (
        weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and not weight.is_mkldnn
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


class PackedLinear(nn.Module):
    """`nn.Linear`'s function with the weight in oneDNN's blocked layout; no gradients.

    The packed weight is a frozen parameter, or a buffer when the original was shared with another
    module (a tied head), so that `parameters()` counts it once.
    """

    def __init__(self, linear: nn.Linear, shared: bool = False):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), PACK_ROWS)
        if shared:
            self.register_buffer("weight", packed)
        else:
            self.weight = nn.Parameter(packed, requires_grad=False)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) -> (..., out)."""
        if torch.is_grad_enabled():
            raise RuntimeError(
                "this model was optimized for inference (alltokens.nn.inference.optimize_for_inference) "
                "and cannot compute gradients; run it under torch.no_grad() or torch.inference_mode(), "
                "or load a fresh copy to train"
            )
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        """Dense tensors under the usual names, so a checkpoint of an optimized model is unchanged."""
        destination[prefix + "weight"] = self.weight.detach().to_dense()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias if keep_vars else self.bias.detach()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


def optimize_for_inference(model: nn.Module, min_elements: int = MIN_ELEMENTS) -> nn.Module:
    """Swap, in place, every plain `nn.Linear` with a packable weight of more than `min_elements`
    elements for a `PackedLinear`.

    Returns the model in eval mode. The result computes the same function (to fp32 rounding, ~1e-6
    relative) faster on CPU but only without gradients; a model with nothing to pack keeps its modules.
    Call it last, once the model has its device and dtype; calling it twice is harmless.
    """
    uses = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear and child.weight.numel() > min_elements and can_pack(child.weight):
                setattr(module, name, PackedLinear(child, shared=uses[id(child.weight)] > 1))
    return model.eval()

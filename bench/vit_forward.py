"""ViT forward speed: alltokens against `transformers.ViTModel` on the same ViT-B/16 weights, fp32, CPU.

    .venv/bin/python bench/vit_forward.py                  # ViT-B/16, batch 1 and 16, 5 alternating repeats
    .venv/bin/python bench/vit_forward.py --model small    # ViT-S/16 (384 wide, 6 heads)
    .venv/bin/python bench/vit_forward.py --quick          # a smoke run: ViT-S/16, batch 1 and 4, 1 repeat

A randomly initialised `ViTModel` (`ViTConfig()` is the ViT-B/16 shape, 86M parameters; no download;
no pooler, which neither side's hidden states use) is saved with `save_pretrained` into a temporary
directory. `transformers` loads it back with `from_pretrained` (its default attention, SDPA), alltokens
with `alltokens.io.load.load_model` through `io/hf/vit.py`, so both run the very same weights on the same
random 224x224 pixels, under `torch.inference_mode()`:

- ours: the `ViT` after `nn.inference.optimize_for_inference` (oneDNN-packed linears), as the
  inference pipelines use it; "ours, unpacked" is the model as loaded, to show what packing brings;
- theirs: `model(pixel_values=x).last_hidden_state`.

Speed: one process, a warm-up call of each side first, then the sides alternate back to back
`--repeats` times; each repeat of a side runs `--images` images (batch 1: that many calls; batch 16:
one call) and images/s is images / wall time. The median and the best of the repeats are reported (see
`common.median_best`). The largest absolute difference between ours and transformers' hidden states is
printed. Memory: each side runs once more in a fresh child process that reports, from /proc, its
resident memory after imports and after loading, the peak during the forward passes (VmHWM, reset after
loading) and the peak overall. Prints Markdown for `docs/benchmarks.md`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
from common import every_repeat, load_average, machine, print_memory_table, reset_peak, rss_mb, speed_cells

from alltokens.io.load import load_model
from alltokens.nn.inference import optimize_for_inference

SIDES = ("ours", "ours, unpacked", "transformers")
SHAPES = {  # ViT-B/16 (transformers' defaults) and ViT-S/16 (DeiT-S's shape)
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
}


def save_vit(directory: Path, model: str) -> None:
    torch.manual_seed(0)
    vit = transformers.ViTModel(transformers.ViTConfig(**SHAPES[model]), add_pooling_layer=False)
    vit.save_pretrained(directory, safe_serialization=True)


def load_side(side: str, directory: Path) -> torch.nn.Module:
    if side == "transformers":
        return transformers.ViTModel.from_pretrained(directory, add_pooling_layer=False).eval()
    _, model = load_model(directory)
    return optimize_for_inference(model) if side == "ours" else model


@torch.inference_mode()
def forward(side: str, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Hidden states (B, 197, C)."""
    if side == "transformers":
        return model(pixel_values=pixels).last_hidden_state
    return model(pixels)


def make_pixels(batch: int) -> torch.Tensor:
    return torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))


def run(side: str, model: torch.nn.Module, pixels: torch.Tensor, images: int) -> torch.Tensor:
    """`images` images in calls of pixels' batch size; the last call's hidden states."""
    for _ in range(max(1, images // pixels.shape[0])):
        out = forward(side, model, pixels)
    return out


def child(args: argparse.Namespace) -> None:
    """One side, one batch size, in a fresh process: print its memory as JSON."""
    torch.set_num_threads(args.threads)
    baseline = rss_mb("VmRSS")
    model = load_side(args.child, args.dir)
    pixels = make_pixels(args.child_batch)
    loaded, load_peak = rss_mb("VmRSS"), rss_mb("VmHWM")
    reset = reset_peak()
    run(args.child, model, pixels, args.images)
    report = {
        "baseline_mb": baseline,
        "loaded_mb": loaded,
        "forward_peak_mb": rss_mb("VmHWM") if reset else None,
        "peak_mb": max(load_peak, rss_mb("VmHWM")),
    }
    print(json.dumps(report))


def memory(args: argparse.Namespace, directory: Path, side: str, batch: int) -> dict:
    command = [sys.executable, __file__, "--child", side, "--dir", str(directory)]
    command += ["--child-batch", str(batch), "--images", str(args.images), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def speed(args: argparse.Namespace, batch: int, models: dict) -> tuple[dict, float]:
    """Alternate the sides; images/s per side over the repeats, and max |ours - transformers|."""
    pixels = make_pixels(batch)
    for side, model in models.items():  # warm-up: allocator, oneDNN primitive caches, lazy imports
        forward(side, model, pixels)
    rates: dict[str, list[float]] = {side: [] for side in models}
    out = {}
    for _ in range(args.repeats):
        for side, model in models.items():
            start = time.perf_counter()
            out[side] = run(side, model, pixels, args.images)
            images = max(1, args.images // batch) * batch
            rates[side].append(images / (time.perf_counter() - start))
    return rates, (out["ours"] - out["transformers"]).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(SHAPES), default="base")
    parser.add_argument("--quick", action="store_true", help="smoke run: ViT-S/16, batch 1 and 4, 1 repeat")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--images", type=int, default=16, help="images per side per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true", help="skip the child processes")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--child-batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.model, args.batch_sizes, args.images, args.repeats = "small", [1, 4], 4, 1
    torch.set_num_threads(args.threads)

    name = {"base": "ViT-B/16", "small": "ViT-S/16"}[args.model]
    print(f"# {name} forward, fp32, 224x224 (197 tokens), {args.images} images per side per repeat")
    print(f"machine: {machine(transformers=transformers.__version__)}\n", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        save_vit(directory, args.model)
        models = {side: load_side(side, directory) for side in SIDES}
        print(
            "images/s, median / best of the repeats; the ratio is ours / transformers, of medians / of bests\n"
        )
        print("| batch | " + " | ".join(SIDES) + " | ratio | max abs diff |")
        print("|---|" + "---|" * (len(SIDES) + 2))
        notes = []
        for batch in args.batch_sizes:
            rates, diff = speed(args, batch, models)
            cells = speed_cells(rates, SIDES, 2)
            print(f"| {batch} | " + " | ".join(cells) + f" | {diff:.1e} |", flush=True)
            notes.append(f"batch {batch}, every repeat: {every_repeat(rates, 2)}")
        print("\n" + "\n".join(notes))
        print(f"load average after the timing: {load_average()}")
        del models
        if not args.no_memory:
            measure = lambda side, batch: memory(args, directory, side, batch)  # noqa: E731
            print_memory_table(measure, args.batch_sizes, "during forward", "forward_peak_mb")


if __name__ == "__main__":
    main()

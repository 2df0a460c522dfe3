"""Decode speed: alltokens against `transformers` `generate` on the same GPT-2-small weights, fp32, CPU.

    .venv/bin/python bench/decode.py            # 128 new tokens, batch 1 and 8, 5 alternating repeats
    .venv/bin/python bench/decode.py --quick    # a smoke run: 16 new tokens, 1 repeat

A randomly initialised `GPT2LMHeadModel` (`GPT2Config()` is the 124M shape; no download) is saved with
`save_pretrained` into a temporary directory. `transformers` loads it back with `from_pretrained`, and
alltokens with `alltokens.io.load.load_model`, so both decode the very same weights. Both decode greedily
from the same random prompts with a KV cache and never stop early (end-of-text is switched off on both
sides), so every run makes exactly batch x new-tokens tokens:

- ours: `generate_ids` (the engine under `TextModel`) on the model after `optimize_for_inference`, as
  `TextModel` does; "ours, unpacked" is the same without that step, to show what it brings;
- theirs: `model.generate(ids, do_sample=False, max_new_tokens=N, use_cache=True)`.

Speed: one process, a warm-up run of each first, then the sides alternate back to back `--repeats` times
(timings drift 10-15% with the machine's load, so alternation keeps the comparison fair); tokens/s is
batch x new tokens / wall time of the whole call, prefill included. The median and the best of the
repeats are reported: other processes only ever slow a run down, so on a shared machine the best is the
closer estimate of what the code does on a quiet one. Memory: each side runs once more in a fresh child process that reports, from Linux's
/proc/self/status, its resident memory (VmRSS) after imports and after loading, the peak while decoding
(VmHWM, reset after loading) and the peak overall, loading included. `ru_maxrss` would not do: a child
inherits its parent's. `transformers` maps the safetensors file and pages weights in on first use, so
its "after load" is low and its decode peak is the number to compare. Prints Markdown for
`docs/benchmarks.md`.
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

from alltokens.generate import SamplingSettings, generate_ids
from alltokens.io.load import load_model
from alltokens.nn.inference import optimize_for_inference

SIDES = ("ours", "ours, unpacked", "transformers")


def save_gpt2(directory: Path) -> None:
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    model.save_pretrained(directory, safe_serialization=True)


def load_side(side: str, directory: Path) -> torch.nn.Module:
    if side == "transformers":
        model = transformers.GPT2LMHeadModel.from_pretrained(directory).eval()
        model.generation_config.eos_token_id = None  # never stop early: exactly N tokens per row
        model.generation_config.pad_token_id = 0
        return model
    _, model = load_model(directory)
    return optimize_for_inference(model) if side == "ours" else model


def decode(side: str, model: torch.nn.Module, prompts: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """Greedy ids (B, new_tokens)."""
    if side == "transformers":
        out = model.generate(
            prompts,
            attention_mask=torch.ones_like(prompts),
            max_new_tokens=new_tokens,
            do_sample=False,
            use_cache=True,
        )
        return out[:, prompts.shape[1] :]
    steps = generate_ids(model, prompts.tolist(), SamplingSettings(temperature=0), new_tokens)
    return torch.stack(list(steps), dim=1)


def make_prompts(batch: int, length: int) -> torch.Tensor:
    return torch.randint(0, 50257, (batch, length), generator=torch.Generator().manual_seed(batch))


def child(args: argparse.Namespace) -> None:
    """One side, one batch size, in a fresh process: print its memory as JSON."""
    torch.set_num_threads(args.threads)
    baseline = rss_mb("VmRSS")
    model = load_side(args.child, args.dir)
    prompts = make_prompts(args.child_batch, args.prompt_len)
    loaded, load_peak = rss_mb("VmRSS"), rss_mb("VmHWM")
    reset = reset_peak()
    start = time.perf_counter()
    decode(args.child, model, prompts, args.new_tokens)
    seconds = time.perf_counter() - start
    report = {
        "baseline_mb": baseline,
        "loaded_mb": loaded,
        "decode_peak_mb": rss_mb("VmHWM") if reset else None,
        "peak_mb": max(load_peak, rss_mb("VmHWM")),
        "tokens_per_s": args.child_batch * args.new_tokens / seconds,
    }
    print(json.dumps(report))


def memory(args: argparse.Namespace, directory: Path, side: str, batch: int) -> dict:
    command = [sys.executable, __file__, "--child", side, "--dir", str(directory)]
    command += ["--child-batch", str(batch), "--new-tokens", str(args.new_tokens)]
    command += ["--prompt-len", str(args.prompt_len), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def speed(args: argparse.Namespace, batch: int, models: dict) -> tuple[dict, str]:
    """Alternate the sides; tokens/s per side over the repeats, and a line on whether the ids agree."""
    prompts = make_prompts(batch, args.prompt_len)
    for side, model in models.items():  # warm-up: allocator, oneDNN primitive caches, lazy imports
        decode(side, model, prompts, min(8, args.new_tokens))
    rates: dict[str, list[float]] = {side: [] for side in models}
    ids = {}
    for _ in range(args.repeats):
        for side, model in models.items():
            start = time.perf_counter()
            ids[side] = decode(side, model, prompts, args.new_tokens)
            rates[side].append(batch * args.new_tokens / (time.perf_counter() - start))
    return rates, agreement(ids["ours"], ids["transformers"])


def agreement(ours: torch.Tensor, theirs: torch.Tensor) -> str:
    if torch.equal(ours, theirs):
        return f"identical greedy ids ({ours.numel()} tokens)"
    row, step = (ours != theirs).nonzero()[0].tolist()
    same = (ours == theirs).float().mean().item()
    return f"ids differ: first at row {row}, step {step}; {same:.1%} of positions agree"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 new tokens, 1 repeat")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
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
        args.new_tokens, args.repeats = 16, 1
    torch.set_num_threads(args.threads)

    print(f"# GPT-2-small decode, fp32, {args.new_tokens} new tokens, prompt {args.prompt_len} tokens")
    print(f"machine: {machine(transformers=transformers.__version__)}\n", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        save_gpt2(directory)
        models = {side: load_side(side, directory) for side in SIDES}
        print(
            "tokens/s, median / best of the repeats; the ratio is ours / transformers, of medians / of bests\n"
        )
        print("| batch | " + " | ".join(SIDES) + " | ratio |")
        print("|---|" + "---|" * (len(SIDES) + 1))
        notes = []
        for batch in args.batch_sizes:
            rates, check = speed(args, batch, models)
            print(f"| {batch} | " + " | ".join(speed_cells(rates, SIDES, 1)) + " |", flush=True)
            notes.append(f"batch {batch}: {check}; every repeat: {every_repeat(rates, 1)}")
        print("\n" + "\n".join(notes))
        print(f"load average after the timing: {load_average()}")
        del models
        if not args.no_memory:
            measure = lambda side, batch: memory(args, directory, side, batch)  # noqa: E731
            print_memory_table(measure, args.batch_sizes, "while decoding", "decode_peak_mb")


if __name__ == "__main__":
    main()

"""Loading memory: `alltokens.io.load.load_model` against `transformers` `from_pretrained`, GPT-2 small.

    .venv/bin/python bench/load_memory.py

A randomly initialised `GPT2LMHeadModel` (`GPT2Config()`, the 124M shape; no download) is saved with
`save_pretrained`, and the same weights in our own format (`config.json` with our `kind`). Each row is a
fresh child process that imports torch, transformers and alltokens, loads one directory, and reports
from /proc/self/status its resident memory (VmRSS) before and after loading, its peak while loading
(VmHWM, reset just before) and, after one forward pass over 64 tokens (which touches every weight), its
resident memory again. Resident memory counts the pages of a memory-mapped file once they are read, so
"after a forward" is the number that says what a loaded model costs; "peak while loading" says what
loading needs on top. Prints Markdown for `docs/benchmarks.md`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from common import machine, reset_peak, rss_mb

SIDES = {
    "ours, our format": "ours",
    "ours, Hugging Face directory": "hf",
    "transformers, Hugging Face directory": "hf",
}


def child(side: str, directory: str) -> None:
    torch.set_num_threads(1)
    before = rss_mb("VmRSS")
    reset_peak()
    if side.startswith("transformers"):
        model = transformers.GPT2LMHeadModel.from_pretrained(directory).eval()
    else:
        from alltokens.io.load import load_model

        model = load_model(directory)[1]
    loaded, peak = rss_mb("VmRSS"), rss_mb("VmHWM")
    with torch.inference_mode():
        model(torch.zeros(1, 64, dtype=torch.long))
    print(json.dumps(dict(before=before, loaded=loaded, peak=peak, used=rss_mb("VmRSS"))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.dir)

    from alltokens.io.checkpoint import save_weights
    from alltokens.io.load import load_model

    with tempfile.TemporaryDirectory() as tmp:
        dirs = {"hf": Path(tmp) / "hf", "ours": Path(tmp) / "ours"}
        torch.manual_seed(0)
        transformers.GPT2LMHeadModel(transformers.GPT2Config()).save_pretrained(dirs["hf"])
        cfg, model = load_model(dirs["hf"])
        dirs["ours"].mkdir()
        cfg.save(dirs["ours"] / "config.json")
        save_weights(dirs["ours"], model.state_dict())
        weights = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
        del model
        print(machine(transformers=transformers.__version__))
        print(f"\nGPT-2 small, fp32: {weights:.0f} MB of weights (MB = 2^20 bytes)\n")
        print("| side | before (MB) | after load (MB) | peak while loading (MB) | after a forward (MB) |")
        print("|---|---|---|---|---|")
        for side, kind in SIDES.items():
            command = [sys.executable, __file__, "--child", side, "--dir", str(dirs[kind])]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            cells = [f"{r[k]:.0f}" for k in ("before", "loaded", "peak", "used")]
            print(f"| {side} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

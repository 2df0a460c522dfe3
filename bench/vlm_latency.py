"""VLM answer latency for one 64x64 image: time to the first token and to the whole answer.

    .venv/bin/python bench/vlm_latency.py                 # random weights of the tiny preset's shapes
    .venv/bin/python bench/vlm_latency.py --model DIR     # a trained VLM run directory
    .venv/bin/python bench/vlm_latency.py --quick         # a smoke run: 3 repeats

What is timed is what `VisionLanguageModel.ask` does for one request, split into its phases, with the
model after `optimize_for_inference` as the pipeline holds it:

1. image: the PIL image fitted and normalised to the tower's input (`data.vqa.image_pixels`), the
   vision tower up to its feature layer and the projector (`VLM.image_tokens`): once per request;
2. prefill: the chat prompt with K image placeholders, image tokens spliced in, up to the first token;
3. decode: the remaining new tokens, one cached LM step each (`generate_ids`, the shared engine).

First token = 1 + 2; total = 1 + 2 + 3. Every run makes exactly `--new-tokens` tokens (no end token is
given to the engine), greedy. Without `--model` the weights are random with the widths of the presets a
`train vlm --preset tiny` run on a `train clip --preset tiny` tower produces (a 3-layer, 96-wide ViT;
a 4-layer, 128-wide LM), the tower taking the 64x64 image in 16px patches (K = 16 image tokens) and in
8px patches (K = 64), to show what the image-token count costs. One warm-up request, then `--repeats`
timed ones; the median and the best are reported (other processes only ever slow a run down).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import time

import torch
from common import machine

from alltokens.data.shapes import random_scene, render
from alltokens.generate import SamplingSettings, generate_ids
from alltokens.io.load import load
from alltokens.models.vlm import VLM, VLMConfig
from alltokens.pipelines.vlm import VisionLanguageModel
from alltokens.tokenizers import byte_tokenizer
from alltokens.train.recipes import clip as clip_recipe
from alltokens.train.recipes import vlm as vlm_recipe

QUESTION = "what colour is the circle?"


def random_vlm(patch_size: int) -> VisionLanguageModel:
    """Random weights shaped like a tiny-preset run, the tower cutting 64x64 images into patches of
    `patch_size` (the byte tokenizer: ids do not change the cost of a step, only the vocabulary's size
    does, and the head is small either way)."""
    tok = byte_tokenizer()
    vision = dataclasses.replace(
        clip_recipe.load_preset("tiny").model.vision, image_size=64, patch_size=patch_size
    )
    recipe = vlm_recipe.load_preset("tiny")
    K = vision.num_patches
    lm = dataclasses.replace(
        recipe.lm, vocab_size=tok.vocab_size, max_position_embeddings=K + recipe.text_context
    )
    cfg = VLMConfig(vision=vision, lm=lm, image_token_id=tok.token_to_id("<|image|>"))
    torch.manual_seed(0)
    model = VLM(cfg)
    model.init_weights()
    return VisionLanguageModel(model.eval(), tok)


def request(m: VisionLanguageModel, image, new_tokens: int) -> tuple[float, float, float]:
    """Seconds of (image tokens, prefill to the first token, the other new tokens) for one question."""
    t0 = time.perf_counter()
    image_embeds, counts = m.image_tokens([image])  # (K, C), [K]
    t1 = time.perf_counter()
    ids, _ = m.chat.encode([{"role": "user", "content": QUESTION, "images": [image]}], counts)
    steps = generate_ids(
        m.model.with_images(image_embeds), [ids], SamplingSettings(temperature=0), new_tokens
    )
    next(steps)
    t2 = time.perf_counter()
    for _ in steps:
        pass
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def measure(name: str, m: VisionLanguageModel, image, new_tokens: int, repeats: int) -> str:
    request(m, image, new_tokens)  # warm-up
    runs = [request(m, image, new_tokens) for _ in range(repeats)]
    first = [(a + b) * 1e3 for a, b, _ in runs]
    total = [(a + b + c) * 1e3 for a, b, c in runs]
    image_ms = statistics.median(a * 1e3 for a, _, _ in runs)
    prefill_ms = statistics.median(b * 1e3 for _, b, _ in runs)
    per_token = statistics.median(c * 1e3 / max(new_tokens - 1, 1) for _, _, c in runs)
    prompt = len(
        m.chat.encode([{"role": "user", "content": QUESTION, "images": [image]}], [m.cfg.image_tokens])[0]
    )
    return (
        f"| {name} | {m.cfg.image_tokens} | {prompt} | {statistics.median(first):.1f} ({min(first):.1f}) | "
        f"{statistics.median(total):.1f} ({min(total):.1f}) | {image_ms:.1f} | {prefill_ms:.1f} | {per_token:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a VLM run directory (default: random weights, tiny shapes)")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else args.repeats
    image = render(random_scene(random.Random(0)), 64, random.Random(0))  # one 64x64 shapes picture
    models = (
        {args.model: load(args.model)}
        if args.model
        else {
            "tiny, 16px patches": random_vlm(patch_size=16),
            "tiny, 8px patches": random_vlm(patch_size=8),
        }
    )
    print(f"# VLM answer latency: one 64x64 image, {args.new_tokens} new tokens, greedy, fp32")
    print(f"machine: {machine()}; median (best) of {repeats} requests\n")
    print(
        "| model | image tokens | prompt tokens | first token ms | total ms | image ms | prefill ms | ms/token after |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, m in models.items():
        print(measure(name, m, image, args.new_tokens, repeats), flush=True)


if __name__ == "__main__":
    main()

"""VLM training step (stage 2 of the 'tiny-long' recipe): conversations a row each, as LLaVA pads them,
against packed rows, in float32 and under bfloat16 autocast.

    .venv/bin/python bench/vlm_train.py            # 20 timed steps per layout
    .venv/bin/python bench/vlm_train.py --quick    # a smoke run: 3 steps

The model has the widths of a 'tiny-long' run on the 96-px 'tiny-colour-96' and 'tiny-shape-96' towers
(two 3-layer, 96-wide ViTs summed into a 4-layer, 128-wide LM) with random weights: a step's cost
does not depend on what the weights hold. Its batches are the recipe's: 16 shapes scenes, 6
one-question conversations each, a fifth of the images asked for the caption, colour noising
(`data.vqa.VQABatches`). Each layout trains the same stream from the same initial weights: "rows" is
one conversation per row, right-padded to the batch's longest (`pack=False`; LLaVA's trainer pads to
the longest too); "packed" fills rows of up to twice the longest conversation, each conversation
attending only to itself (`segment_mask`). A step is forward, backward and AdamW on the projector and
the LM (the towers stay frozen, as in the recipe). Reported: the median step (and the fastest), real
(not padding) tokens per second, the share of padding, the loss after the timed steps (the layouts
must agree: packing changes the layout, not the sums), and the peak resident memory of each phase.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import time

import torch
from common import machine, reset_peak, rss_mb

from alltokens.data.vqa import ChatFormat, VQABatches
from alltokens.models.vlm import VLM, VLMConfig
from alltokens.train.recipes import clip as clip_recipe
from alltokens.train.recipes import vlm as vlm_recipe


def tiny_long(chat: ChatFormat) -> VLMConfig:
    recipe = vlm_recipe.load_preset("tiny-long")
    colour = clip_recipe.load_preset("tiny-colour-96").model.vision
    shape = clip_recipe.load_preset("tiny-shape-96").model.vision
    lm = dataclasses.replace(recipe.lm, vocab_size=chat.tokenizer.vocab_size, max_position_embeddings=320)
    return VLMConfig(
        vision=colour,
        second_vision=shape,
        lm=lm,
        image_token_id=chat.image_id,
        feature_layer=recipe.feature_layer,
        drop_cls=recipe.drop_cls,
        feature_norm=recipe.feature_norm,
        tower_fusion=recipe.tower_fusion,
    )


def train(cfg: VLMConfig, chat: ChatFormat, pack: bool, bf16: bool, steps: int) -> dict:
    """Time `steps` stage-2 steps (after one warm-up) of a fresh model on the recipe's batches."""
    torch.manual_seed(0)
    model = VLM(cfg)
    model.init_weights()
    model.vision.requires_grad_(False)
    model.second_vision.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1)
    recipe = vlm_recipe.load_preset("tiny-long")
    data = VQABatches(
        chat, cfg, recipe.stage2.batch_size, seed=0, questions=recipe.questions,
        caption_fraction=recipe.caption_fraction, colour_noise=recipe.colour_noise,
        question_noise=recipe.question_noise, pack=pack,
    )  # fmt: skip
    batches = [data.batch(n) for n in range(steps + 1)]  # made before timing: the layouts' own cost
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    reset_peak()
    times, real, padded = [], 0, 0
    for n, batch in enumerate(batches):
        t0 = time.perf_counter()
        with autocast:
            loss, _ = vlm_recipe.image_next_token(model, batch)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        if n:  # the first step is a warm-up
            times.append(time.perf_counter() - t0)
            tokens = batch["segments"] >= 0 if pack else torch.ones_like(batch["ids"], dtype=torch.bool)
            if not pack:  # a row's own tokens end at its last target (the reply's end), padding after
                last = torch.arange(batch["ids"].shape[1]).masked_fill(~batch["loss_mask"], 0).amax(1)
                tokens = torch.arange(batch["ids"].shape[1]) <= last[:, None]
            real += int(tokens[:, :-1].sum())
            padded += batch["ids"][:, :-1].numel()
    return {
        "step_ms": statistics.median(times) * 1e3,
        "best_ms": min(times) * 1e3,
        "tokens_s": real / sum(times),
        "padding": 1 - real / padded,
        "loss": float(loss.detach()),
        "peak_mb": rss_mb("VmHWM"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="3 steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = 3 if args.quick else args.steps
    recipe = vlm_recipe.load_preset("tiny-long")
    chat = ChatFormat(clip_recipe.captions_tokenizer(recipe.vocab_size, recipe.tokenizer_scenes))
    cfg = tiny_long(chat)
    print("# VLM training step: the 'tiny-long' recipe's stage 2, 16 images x 6 conversations")
    print(f"machine: {machine()}; median (best) of {steps} steps after one warm-up\n")
    print("| layout | autocast | step ms | real tokens/s | padding | loss after | peak RSS MB | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    base = None
    for name, pack, bf16 in (("rows", False, False), ("packed", True, False), ("packed", True, True)):
        r = train(cfg, chat, pack, bf16, steps)
        base = base or r["step_ms"]
        print(
            f"| {name} | {'bf16' if bf16 else 'fp32'} | {r['step_ms']:.0f} ({r['best_ms']:.0f}) | "
            f"{r['tokens_s']:,.0f} | {r['padding']:.0%} | {r['loss']:.4f} | {r['peak_mb']:.0f} | "
            f"{base / r['step_ms']:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()

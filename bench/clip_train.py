"""CLIP training speed: alltokens against `open_clip` on one small configuration, fp32 (or bf16), CPU.

    make bench-deps                                   # open-clip-torch without its dependencies (below)
    .venv/bin/python bench/clip_train.py              # 5 alternating repeats of 10 steps per side
    .venv/bin/python bench/clip_train.py --bf16       # the same with bfloat16 autocast on both sides
    .venv/bin/python bench/clip_train.py --quick      # a smoke run: 1 repeat of 2 steps
    .venv/bin/python bench/clip_train.py --compile    # both models under torch.compile (as `compile: true`)

The configuration (`SHAPE`): images 64x64 in 8px patches (64 patches + [CLS]), a 256-wide 4-layer
4-head vision tower; a 256-wide 4-layer 4-head causal text tower over a 512-id vocabulary and 32-token
context; a 256-wide joint space; quick GELU, pre-norm, a LayerNorm before the vision blocks and after
both stacks, [CLS] pooling for images and end-of-text pooling for text, no attention pooling. Both
models have the same parameters (counts printed), and ours is given open_clip's initial weights
(`copy_open_clip`), so that the first loss of each on the same batch agrees (printed): both compute the
same function.

One training step on each side, with the same synthetic batch of 32 (random pixels, random token ids
each ending in the end-of-text id, the largest, then right padding):

- ours: `train.objectives.contrastive` (model forward -> `contrastive_loss`), backward, gradient clipping
  at 1.0 and the optimiser `train.optim.make_optimizer` builds (fused AdamW, no decay on vectors): the
  body of `Trainer`'s loop, without its logging and checkpoints;
- open_clip: `model(pixels, ids)` -> `open_clip.loss.ClipLoss`, backward, clipping at 1.0, and the
  same fused AdamW over the same parameter groups, so that the models are what is compared.

Speed: one process, 3 warm-up steps each, then the sides take turns of `--steps` steps, `--repeats`
times; images/s = batch x steps / wall time of a turn; median and best of the turns. `--threads`
torch threads for both.

open_clip cannot be installed normally here: it depends on torchvision, whose CPU wheels do not load
beside this torch build ("operator torchvision::nms does not exist"), and pip would replace torch with a
CUDA build. `make bench-deps` installs it with `--no-deps`, and `stub_torchvision` puts a minimal
stand-in `torchvision` into `sys.modules` before `import open_clip`, holding only the names open_clip
imports at module load (transforms classes, `InterpolationMode`, `FrozenBatchNorm2d`). open_clip's
image transforms are therefore unusable, which does not matter: the benchmark feeds tensors directly.
"""

from __future__ import annotations

import argparse
import enum
import statistics
import sys
import time
import types

import torch
import transformers  # before the stand-in: transformers probes for torchvision when imported
from common import load_average, machine, median_best

from alltokens.models.clip import CLIP, CLIPConfig, clip_text_config
from alltokens.models.vit import ViTConfig
from alltokens.train.config import TrainConfig
from alltokens.train.objectives import contrastive
from alltokens.train.optim import make_optimizer, param_groups

SHAPE = dict(
    image_size=64, patch_size=8, width=256, layers=4, heads=4, context=32, vocab=512, embed_dim=256, batch=32
)
SIDES = ("ours", "open_clip")


def stub_torchvision() -> None:
    """A stand-in `torchvision` with only what open_clip imports at module load; using any of it raises."""

    class Unavailable:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("torchvision is a stand-in here (bench/clip_train.py): no image transforms")

    def module(name: str, **attrs) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    names = (
        "Normalize",
        "Compose",
        "RandomResizedCrop",
        "ToTensor",
        "Resize",
        "CenterCrop",
        "ColorJitter",
        "Grayscale",
    )
    transforms = module(
        "torchvision.transforms",
        **{n: type(n, (Unavailable,), {}) for n in names},
        InterpolationMode=enum.Enum("InterpolationMode", "NEAREST BILINEAR BICUBIC"),
        functional=module("torchvision.transforms.functional"),
    )
    misc = module("torchvision.ops.misc", FrozenBatchNorm2d=type("FrozenBatchNorm2d", (Unavailable,), {}))
    module("torchvision", transforms=transforms, ops=module("torchvision.ops", misc=misc))


def build_open_clip() -> torch.nn.Module:
    from open_clip.model import CLIP as OpenCLIP
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    s = SHAPE
    vision = CLIPVisionCfg(
        layers=s["layers"], width=s["width"], head_width=s["width"] // s["heads"], patch_size=s["patch_size"],
        image_size=s["image_size"],
    )  # fmt: skip
    text = CLIPTextCfg(
        context_length=s["context"], vocab_size=s["vocab"], width=s["width"], heads=s["heads"], layers=s["layers"]
    )  # fmt: skip
    torch.manual_seed(0)
    return OpenCLIP(s["embed_dim"], vision, text, quick_gelu=True)


def build_ours() -> CLIP:
    s = SHAPE
    tower = dict(
        hidden_size=s["width"], num_hidden_layers=s["layers"], num_attention_heads=s["heads"], mlp="quick_gelu",
        norm_eps=1e-5,
    )  # fmt: skip
    vision = ViTConfig(
        **tower, image_size=s["image_size"], patch_size=s["patch_size"], patch_bias=False, embedding_norm=True
    )
    text = clip_text_config(**tower, vocab_size=s["vocab"], max_position_embeddings=s["context"])
    return CLIP(CLIPConfig(vision=vision, text=text, projection_dim=s["embed_dim"]))


def copy_open_clip(ours: CLIP, theirs: torch.nn.Module) -> None:
    """Load open_clip's weights into ours: its blocks have our layout ([q | k | v] in `in_proj`), its
    projections are stored (in, out), the transpose of our `Linear`s."""
    block = {"ln_1": "norm1", "attn.in_proj_": "attn.qkv.", "attn.out_proj": "attn.proj", "ln_2": "norm2"}
    block |= {"mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj"}
    top = {
        "visual.conv1.weight": "vision.patch_embed.weight",
        "visual.class_embedding": "vision.cls",
        "visual.positional_embedding": "vision.positions.weight",
        "visual.ln_pre": "vision.embedding_norm",
        "visual.ln_post": "vision.core.norm",
        "visual.proj": "vision_proj.weight",
        "visual.transformer.resblocks": "vision.core.blocks",
        "transformer.resblocks": "text.core.blocks",
        "token_embedding": "text.embed.tokens",
        "positional_embedding": "text.embed.positions.weight",
        "ln_final": "text.core.norm",
        "text_projection": "text_proj.weight",
    }
    state = {}
    for name, t in theirs.state_dict().items():
        if name == "attn_mask":
            continue
        for old, new in (*top.items(), *block.items()):
            if old in name:
                name = name.replace(old, new, 1)
        state[name] = t.T if name.endswith("_proj.weight") else t
    mine = ours.state_dict()
    ours.load_state_dict({k: t.reshape(mine[k].shape) for k, t in state.items()}, strict=True)


def make_batch() -> dict[str, torch.Tensor]:
    s = SHAPE
    g = torch.Generator().manual_seed(0)
    B, T, V = s["batch"], s["context"], s["vocab"]
    pixels = torch.randn(B, 3, s["image_size"], s["image_size"], generator=g)
    lengths = torch.randint(4, T + 1, (B,), generator=g)
    mask = torch.arange(T)[None] < lengths[:, None]  # (B, T)
    ids = torch.randint(1, V - 1, (B, T), generator=g)
    ids[torch.arange(B), lengths - 1] = V - 1  # end-of-text, the largest id (open_clip pools at argmax)
    ids[~mask] = 0
    return {"pixels": pixels, "ids": ids, "attention_mask": mask}


def make_steps(ours: CLIP, theirs: torch.nn.Module, batch: dict[str, torch.Tensor], bf16: bool) -> dict:
    """One training step per side, as a function returning the loss; `bf16`: forward and loss under
    bfloat16 autocast on both sides (our `Trainer`'s `bf16`, open_clip_train's `amp_bf16`)."""
    from open_clip.loss import ClipLoss

    settings = TrainConfig(lr=1e-4, weight_decay=0.1)
    opt_ours = make_optimizer(ours, settings)
    groups = param_groups(theirs, settings.weight_decay)
    opt_theirs = torch.optim.AdamW(groups, lr=settings.lr, betas=(settings.beta1, settings.beta2), fused=True)
    clip_loss = ClipLoss()
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)  # noqa: E731

    def ours_step() -> float:
        with autocast():
            loss, _ = contrastive(ours, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ours.parameters(), 1.0)
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)
        return loss.item()

    def theirs_step() -> float:
        with autocast():
            image, text, scale = theirs(batch["pixels"], batch["ids"])
            loss = clip_loss(image, text, scale)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
        opt_theirs.step()
        opt_theirs.zero_grad(set_to_none=True)
        return loss.item()

    return {"ours": ours_step, "open_clip": theirs_step}


@torch.no_grad()
def first_losses(ours: CLIP, theirs: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    from open_clip.loss import ClipLoss

    return contrastive(ours, batch)[0].item(), ClipLoss()(*theirs(batch["pixels"], batch["ids"])).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per side per turn")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast on both sides")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat of 2 steps")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models (warm-up compiles)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 2, 1
    torch.set_num_threads(args.threads)
    stub_torchvision()
    import open_clip

    theirs, ours = build_open_clip().train(), build_ours().train()
    copy_open_clip(ours, theirs)
    if args.compile:  # the same compiler on both sides; the warm-up steps below pay the compilation
        ours, theirs = torch.compile(ours), torch.compile(theirs)
    batch = make_batch()
    counts = {side: sum(p.numel() for p in m.parameters()) for side, m in zip(SIDES, (ours, theirs))}
    versions = dict(open_clip=open_clip.__version__, transformers=transformers.__version__)
    print(
        f"# CLIP training step, {'bf16 autocast' if args.bf16 else 'fp32'}"
        f"{', torch.compile' if args.compile else ''}, batch {SHAPE['batch']}: {SHAPE}"
    )
    print(f"machine: {machine(**versions)}")
    print(f"parameters: ours {counts['ours']:,}, open_clip {counts['open_clip']:,}")
    print(
        "first loss on the same batch and weights: ours {:.6f}, open_clip {:.6f}\n".format(
            *first_losses(ours, theirs, batch)
        )
    )

    steps = make_steps(ours, theirs, batch, args.bf16)
    for step in steps.values():  # warm-up: allocator, optimiser state, oneDNN primitive caches
        for _ in range(3):
            step()
    rates: dict[str, list[float]] = {side: [] for side in SIDES}
    losses = {}
    for _ in range(args.repeats):
        for side in SIDES:
            start = time.perf_counter()
            for _ in range(args.steps):
                losses[side] = steps[side]()
            rates[side].append(SHAPE["batch"] * args.steps / (time.perf_counter() - start))
    (m_ours, b_ours), (m_theirs, b_theirs) = median_best(rates["ours"]), median_best(rates["open_clip"])
    print("images/s, median / best of the turns; the ratio is ours / open_clip\n")
    print("| ours | open_clip | ratio (medians / bests) | ms per step, ours / open_clip (medians) |")
    print("|---|---|---|---|")
    ms = [1000 * SHAPE["batch"] / statistics.median(rates[s]) for s in SIDES]
    print(
        f"| {m_ours:.1f} / {b_ours:.1f} | {m_theirs:.1f} / {b_theirs:.1f} | "
        f"{m_ours / m_theirs:.2f}x / {b_ours / b_theirs:.2f}x | {ms[0]:.0f} / {ms[1]:.0f} |"
    )
    print("\nevery turn: " + "; ".join(f"{s} " + ", ".join(f"{r:.1f}" for r in rates[s]) for s in SIDES))
    print(f"loss after the last step: ours {losses['ours']:.4f}, open_clip {losses['open_clip']:.4f}")
    print(f"load average after the timing: {load_average()}")


if __name__ == "__main__":
    main()

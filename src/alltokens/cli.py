"""The `alltokens` command line. Each command parses, calls one library function, and prints.

Errors the user can fix (a missing file, a bad value) are printed as one line and exit with code 2;
anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def cmd_tokenizer_train(args: argparse.Namespace) -> None:
    from alltokens.tokenizers import train_bpe

    tok = train_bpe(args.input, vocab_size=args.vocab_size)
    tok.save(args.out)
    print(f"trained a {tok.vocab_size}-token BPE tokenizer on {len(args.input)} file(s) -> {args.out}")


def cmd_tokenizer_encode(args: argparse.Namespace) -> None:
    from alltokens.tokenizers import load_tokenizer, visible

    pieces = load_tokenizer(args.tokenizer).pieces(args.text)
    print("".join(f"[{visible(piece)}:{i}]" for piece, i in pieces))
    print(f"{len(pieces)} tokens")


def cmd_tokenizer_decode(args: argparse.Namespace) -> None:
    from alltokens.tokenizers import load_tokenizer

    print(load_tokenizer(args.tokenizer).decode(args.ids))


def cmd_data_pydocs(args: argparse.Namespace) -> None:
    from alltokens.data.pydocs import write_pydocs_corpus

    n_bytes = write_pydocs_corpus(args.out)
    print(f"wrote {n_bytes / 1e6:.2f} MB of standard-library docstrings to {args.out}")


def cmd_data_shapes(args: argparse.Namespace) -> None:
    from alltokens.data.shapes import write_shapes

    path = write_shapes(args.out, n=args.n, size=args.size, seed=args.seed, split=args.split)
    print(
        f"wrote {args.n} {args.size}x{args.size} {args.split} shapes scenes to {args.out}/images and {path}"
    )


def cmd_train_lm(args: argparse.Namespace) -> None:
    from alltokens.train.recipes.lm import train_lm

    out = train_lm(
        data=args.data,
        tokenizer=args.tokenizer,
        out=args.out,
        preset=args.preset,
        steps=args.steps,
        batch_size=args.batch_size,
        block_size=args.block_size,
        lr=args.lr,
        seed=args.seed,
        resume=args.resume,
        progress=True,
        bf16=args.bf16 or None,
    )
    print(f"model written to {out}")


def cmd_train_vlm(args: argparse.Namespace) -> None:
    from alltokens.train.recipes.vlm import train_vlm

    out = train_vlm(
        vision=args.vision,
        second_vision=args.second_vision,
        lm=args.lm,
        out=args.out,
        data=args.data,
        preset=args.preset,
        stage1_steps=args.stage1_steps,
        stage2_steps=args.stage2_steps,
        seed=args.seed,
        resume=args.resume,
        progress=True,
    )
    print(f"model written to {out}")


def cmd_ask(args: argparse.Namespace) -> None:
    m, image = _vlm_and_image(args)
    print(
        m.ask(
            image, args.question, max_new_tokens=args.max_new_tokens, max_image_tokens=args.max_image_tokens
        )
    )


def cmd_caption(args: argparse.Namespace) -> None:
    m, image = _vlm_and_image(args)
    print(m.caption(image, max_new_tokens=args.max_new_tokens, max_image_tokens=args.max_image_tokens))


def _vlm_and_image(args: argparse.Namespace) -> tuple:
    """The VLM and the loaded image of `ask`/`caption`; the image's layout goes to stderr, so stdout is
    only the reply."""
    import alltokens
    from alltokens.tokenizers.image import load_image

    m, image = alltokens.load(args.model), load_image(args.image)
    (layout,) = m.layouts([image], args.max_image_tokens)
    print(f"{args.image}: {layout.describe()}", file=sys.stderr)
    return m, image


def cmd_generate(args: argparse.Namespace) -> None:
    import alltokens

    m = alltokens.load(args.model)
    settings = dict(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        repetition_penalty=args.repetition_penalty,
        stop=args.stop,
        seed=args.seed,
    )
    if args.stream:
        for piece in m.stream(args.prompt, **settings):
            print(piece, end="", flush=True)
        print()
    else:
        print(m.generate(args.prompt, **settings))


def cmd_train_clip(args: argparse.Namespace) -> None:
    from alltokens.train.recipes.clip import train_clip

    out = train_clip(
        data=args.data,
        out=args.out,
        preset=args.preset,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        resume=args.resume,
        progress=True,
    )
    print(f"model written to {out}")


def cmd_classify(args: argparse.Namespace) -> None:
    import alltokens

    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    probs = alltokens.load(args.model).classify(args.image, labels)
    for image, row in zip(args.image, probs.tolist()):
        print(image)
        for p, label in sorted(zip(row, labels), reverse=True):
            print(f"  {p:6.1%}  {label}")


def cmd_search(args: argparse.Namespace) -> None:
    import alltokens

    for path, score in alltokens.load(args.model).search(args.query, args.folder, top_k=args.top):
        print(f"{score:.3f}  {path}")


def cmd_export_hf(args: argparse.Namespace) -> None:
    from alltokens.io.export import export_hf

    export_hf(args.model, args.out)
    print(f"Hugging Face directory written to {args.out}")


def cmd_export_ours(args: argparse.Namespace) -> None:
    from alltokens.io.export import export_ours

    export_ours(args.model, args.out)
    print(f"model written to {args.out} in our format")


def cmd_embed(args: argparse.Namespace) -> None:
    import alltokens

    vectors = alltokens.load(args.model).embed(args.text)
    if args.similarity:
        sim = vectors @ vectors.T
        for text, row in zip(args.text, sim.tolist()):
            print(" ".join(f"{v:6.3f}" for v in row), " ", text)
    else:
        for text, row in zip(args.text, vectors.tolist()):
            print(text, "\t", " ".join(f"{v:.4f}" for v in row))


def cmd_similar(args: argparse.Namespace) -> None:
    import alltokens
    from alltokens.pipelines.embedding import most_similar_lines

    for score, line in most_similar_lines(alltokens.load(args.model), args.query, args.file, top=args.top):
        print(f"{score:.3f}  {line}")


def cmd_analogy(args: argparse.Namespace) -> None:
    import alltokens
    from alltokens.pipelines.embedding import analogy

    for score, word in analogy(alltokens.load(args.model), args.a, args.b, args.c, top=args.top):
        print(f"{score:.3f}  {word}")


def cmd_inspect(args: argparse.Namespace) -> None:
    from pathlib import Path

    from alltokens.tokenizers.image import draw_patch_grid, fit_image, load_image
    from alltokens.tokenizers.patches import describe_grid
    from alltokens.tokenizers.tiling import choose_layout

    if not args.tile and (args.max_image_tokens is not None or args.pool):
        raise ValueError("--max-image-tokens and --pool choose an AnyRes layout: give --tile too")
    image = load_image(args.image)
    grid = describe_grid(args.size, args.size, args.patch)
    w, h = image.size
    layout = args.tile and choose_layout(
        w, h, args.tile, args.patch, args.max_image_tokens, pool=2 if args.pool else 1
    )
    out = args.out or f"{Path(args.image).stem}-patches.png"
    draw_patch_grid(fit_image(image, args.size, args.mode), args.patch).save(out)
    print(f"{args.image}: {w}x{h}, fitted ({args.mode}) to {args.size}x{args.size}\n{grid}")
    if layout:
        print(f"AnyRes: {layout.describe()}")
    print(f"patch grid -> {out}")


def cmd_probe(args: argparse.Namespace) -> None:
    from alltokens.data.shapes.probe import probe_tower
    from alltokens.train.recipes.vlm import vision_tower

    scores = probe_tower(vision_tower(args.model, "--model"), args.layer, args.train_scenes, args.test_scenes)
    print(
        f"linear probes on layer {args.layer}'s patch tokens ({args.model}); held out: scenes of held-out pairs"
    )
    print(f"{'attribute':<10} {'train':>6} {'held out':>9} {'chance':>7}")
    for s in scores:
        print(f"{s.attribute:<10} {s.train:>6.1%} {s.held_out:>9.1%} {s.chance:>7.1%}")


def cmd_demo(args: argparse.Namespace) -> None:
    from alltokens.demo import run_demo

    report = run_demo(out=args.out, quick=args.quick, log=print)
    print(f"report: {report}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alltokens", description="Everything is tokens.")
    sub = p.add_subparsers(dest="command", required=True)

    tok = sub.add_parser("tokenizer", help="train, and look through, text tokenizers").add_subparsers(
        dest="action", required=True
    )
    t = tok.add_parser("train", help="train a byte-level BPE tokenizer")
    t.add_argument("--input", nargs="+", required=True, help="UTF-8 text files")
    t.add_argument("--vocab-size", type=int, default=4096)
    t.add_argument("--out", required=True)
    t.set_defaults(func=cmd_tokenizer_train)
    t = tok.add_parser("encode", help="show each token of a text with its id")
    t.add_argument("--tokenizer", required=True, help="a directory with tokenizer.json, or 'bytes'")
    t.add_argument("text")
    t.set_defaults(func=cmd_tokenizer_encode)
    t = tok.add_parser("decode", help="turn ids back into text")
    t.add_argument("--tokenizer", required=True)
    t.add_argument("ids", nargs="+", type=int)
    t.set_defaults(func=cmd_tokenizer_decode)

    data = sub.add_parser("data", help="build the data sets").add_subparsers(dest="action", required=True)
    d = data.add_parser("pydocs", help="the standard library's docstrings as one text corpus")
    d.add_argument("--out", required=True)
    d.set_defaults(func=cmd_data_pydocs)
    d = data.add_parser("shapes", help="shapes scenes as PNGs plus a JSONL of scenes, captions and QA")
    d.add_argument("--n", type=int, required=True, help="number of images")
    d.add_argument("--size", type=int, default=64, help="image side in pixels")
    d.add_argument("--out", required=True)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--split", choices=["train", "heldout", "any"], default="train")
    d.set_defaults(func=cmd_data_shapes)

    train = sub.add_parser("train", help="train a model").add_subparsers(dest="what", required=True)
    t = train.add_parser("lm", help="train a language model")
    t.add_argument("--data", nargs="+", required=True, help="UTF-8 text files")
    t.add_argument("--tokenizer", required=True, help="a tokenizer directory, or 'bytes'")
    t.add_argument("--out", required=True)
    t.add_argument("--preset", default="tiny")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--block-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 autocast (fast on CPUs with AVX-512 BF16 or AMX, and GPUs)",
    )
    t.set_defaults(func=cmd_train_lm)

    t = train.add_parser("vlm", help="train a vision-language model (LLaVA's two stages)")
    t.add_argument("--vision", required=True, help="a CLIP or ViT directory (ours or Hugging Face's)")
    t.add_argument(
        "--second-vision",
        default=None,
        help="a second CLIP or ViT directory whose features join the first's (same image size and patches)",
    )
    t.add_argument("--lm", required=True, help="a language model directory, or 'new'")
    t.add_argument("--out", required=True)
    t.add_argument("--data", default="shapes")
    t.add_argument("--preset", default="tiny")
    t.add_argument("--stage1-steps", type=int, default=None, help="projector-only steps on captions")
    t.add_argument("--stage2-steps", type=int, default=None, help="projector + LM steps on questions")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.set_defaults(func=cmd_train_vlm)

    t = train.add_parser("clip", help="train a CLIP on image-caption pairs")
    t.add_argument("--data", required=True, help="'shapes', 'digits', or a folder of images with captions")
    t.add_argument("--out", required=True)
    t.add_argument("--preset", default="tiny")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.set_defaults(func=cmd_train_clip)

    a = sub.add_parser("ask", help="answer a question about an image")
    a.add_argument("--model", required=True, help="a VLM directory")
    a.add_argument("image")
    a.add_argument("question")
    a.set_defaults(func=cmd_ask)
    c = sub.add_parser("caption", help="describe an image")
    c.add_argument("--model", required=True, help="a VLM directory")
    c.add_argument("image")
    c.set_defaults(func=cmd_caption)
    for vlm_parser in (a, c):
        vlm_parser.add_argument("--max-new-tokens", type=int, default=None)
        vlm_parser.add_argument("--max-image-tokens", type=int, default=None, help="the image's token budget")

    g = sub.add_parser("generate", help="continue a prompt")
    g.add_argument("--model", required=True)
    g.add_argument("prompt")
    g.add_argument("--max-new-tokens", type=int, default=64)
    g.add_argument("--temperature", type=float, default=0.8)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--min-p", type=float, default=0.0)
    g.add_argument("--repetition-penalty", type=float, default=1.0)
    g.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--stream", action="store_true")
    g.set_defaults(func=cmd_generate)

    ex = sub.add_parser("export", help="write a model in another format").add_subparsers(
        dest="fmt", required=True
    )
    e = ex.add_parser("hf", help="a Hugging Face transformers directory")
    e.add_argument("--model", required=True)
    e.add_argument("--out", required=True)
    e.set_defaults(func=cmd_export_hf)
    e = ex.add_parser("ours", help="our format, which loads in about one copy of the weights")
    e.add_argument("--model", required=True, help="any model directory alltokens loads")
    e.add_argument("--out", required=True)
    e.set_defaults(func=cmd_export_ours)

    e = sub.add_parser("embed", help="sentence embeddings")
    e.add_argument("--model", required=True)
    e.add_argument("text", nargs="+")
    e.add_argument("--similarity", action="store_true", help="print the cosine similarity matrix")
    e.set_defaults(func=cmd_embed)
    e = sub.add_parser("similar", help="the lines of FILE nearest to a query")
    e.add_argument("--model", required=True)
    e.add_argument("--query", required=True)
    e.add_argument("file")
    e.add_argument("--top", type=int, default=5)
    e.set_defaults(func=cmd_similar)
    e = sub.add_parser("analogy", help="nearest words to A - B + C")
    e.add_argument("--model", required=True)
    e.add_argument("a")
    e.add_argument("b")
    e.add_argument("c")
    e.add_argument("--top", type=int, default=5)
    e.set_defaults(func=cmd_analogy)

    e = sub.add_parser("classify", help="zero-shot image classification with a CLIP")
    e.add_argument("--model", required=True, help="a CLIP directory (ours or Hugging Face's)")
    e.add_argument("image", nargs="+")
    e.add_argument(
        "--labels", required=True, help='comma-separated label texts: "a red circle,a blue square"'
    )
    e.set_defaults(func=cmd_classify)
    e = sub.add_parser("search", help="the images of FOLDER that best match a text query")
    e.add_argument("--model", required=True, help="a CLIP directory (ours or Hugging Face's)")
    e.add_argument("--query", required=True)
    e.add_argument("folder")
    e.add_argument("--top", type=int, default=5)
    e.set_defaults(func=cmd_search)

    e = sub.add_parser("inspect", help="cut an image into patch tokens and draw the grid")
    e.add_argument("image")
    e.add_argument("--patch", type=int, default=16)
    e.add_argument("--size", type=int, default=224, help="the model's input size in pixels")
    e.add_argument("--mode", choices=["resize", "pad", "crop"], default="resize")
    e.add_argument("--out", help="PNG to write (default: IMAGE_stem-patches.png here)")
    e.add_argument("--tile", type=int, help="also choose an AnyRes layout of tiles of this size")
    e.add_argument("--max-image-tokens", type=int, help="the image-token budget for --tile")
    e.add_argument("--pool", action="store_true", help="2x2-pool each tile's patch tokens")
    e.set_defaults(func=cmd_inspect)

    e = sub.add_parser(
        "probe", help="linear probes: what a vision tower's patch tokens say about shapes scenes"
    )
    e.add_argument("--model", required=True, help="a ViT or CLIP directory with a 3x3 patch grid")
    e.add_argument("--layer", type=int, default=-2, help="-1 the last block, -2 the one before (LLaVA's)")
    e.add_argument("--train-scenes", type=int, default=1500)
    e.add_argument("--test-scenes", type=int, default=500)
    e.set_defaults(func=cmd_probe)

    e = sub.add_parser("demo", help="the main job: train, sample, embed, and write an HTML report")
    e.add_argument("--out", default="runs/demo")
    e.add_argument("--quick", action="store_true", help="a shorter run (under 2 minutes)")
    e.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from alltokens.errors import USER_ERRORS

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except USER_ERRORS as e:
        print(f"alltokens: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # training saves a checkpoint first and says where
        print(f"alltokens: interrupted{f': {e}' if str(e) else ''}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

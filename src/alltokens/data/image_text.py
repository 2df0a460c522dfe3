"""Image-caption batches for contrastive training: the shapes world, the digits, or a folder.

A source is random access: `source.item(index)` returns (image, caption, group) and depends only on
the source's seed and `index`, so batch `i` (items `i*B .. i*B+B-1` of this rank) is the same on every
run and the trainer resumes exactly with `seek(i)`, with no generator state to save.

- `"shapes"`: train-split scenes rendered with variation (`data.shapes.render`), one caption phrasing
  drawn at random per item, each scene followed by near misses of it (`near_miss`: one object moved,
  resized, recoloured or reshaped), the hard negatives that make a model learn more than colours;
  validation uses the held-out split (never-seen colour x shape pairs).
- `"digits"`: scikit-learn's scans, a random phrasing of the label ("the digit seven"); validation
  uses the test split.
- a directory: a `write_shapes` folder (`scenes.jsonl` listing each image's captions), or images each
  with a same-stem `.txt` caption (one phrasing per nonempty line). Its items are read and checked
  once, up front, so a bad file fails before training starts and names itself; the last tenth (by
  name) is held out for validation.

`group` is an id shared by items that describe the same thing (the canonical caption's hash, or the
digit): `train.objectives.contrastive` treats equal groups as positives of each other.

Captions become ids with `encode_captions`: the tokenizer's own special tokens, then the end-of-text
token (CLIP's text tower pools there), right padding.

Shape notation: B batch, T caption tokens, h, w pixels.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image

from alltokens.tokenizers import Tokenizer
from alltokens.tokenizers.image import fit_image, load_image, to_pixels

SOURCES = ("shapes", "digits")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
VAL_FRACTION = 0.1  # of a directory's items, held out for validation
VARIANTS = 4  # shapes items come in runs of a scene and its near misses
# Shapes captions used for training are those that say where each object is: a caption without places
# ("a picture of a red circle") fits every picture of those objects, wherever they are, so it would
# teach the model that places do not matter, and the VLM reads places from this tower's patches.
PLACE_WORDS = frozenset({"top", "middle", "bottom", "left", "right", "center"})


def text_group(text: str) -> int:
    """A stable 63-bit id of a text (the same on every machine and Python run)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


class Source(Protocol):
    def item(self, index: int) -> tuple[Image.Image, str, int]: ...


class ShapesSource:
    """Endless shapes scenes of `split` at `size` pixels, a random caption phrasing each, in runs of
    `VARIANTS`: a scene from the stream, then near misses of it, each with one thing changed."""

    def __init__(self, seed: int, split: str, size: int):
        from alltokens.data.shapes import scene_stream

        self.stream = scene_stream(seed, split, size)
        self.seed, self.split, self.size = seed, split, size

    def item(self, index: int) -> tuple[Image.Image, str, int]:
        from alltokens.data.shapes import captions, render

        base = index - index % VARIANTS
        rng = random.Random(f"caption:{self.seed}:{index}")
        if index % VARIANTS:  # only the scene of the run's first item: this item draws its own
            scene = near_miss(self.stream.scene(base), rng, self.split)
            image = render(scene, self.size, rng)
        else:
            image, scene = self.stream[base]
        options = captions(scene)
        placed = [c for c in options if PLACE_WORDS & set(c.replace(",", " ").split())]
        return image, rng.choice(placed), text_group(options[0])


def near_miss(scene: Any, rng: random.Random, split: str) -> Any:
    """`scene` with one change: an object moved to a free cell, resized, recoloured or reshaped, or two
    objects swapping places.

    Why: in a random batch, two scenes rarely share their colours, so colour words alone tell the
    captions apart and the loss barely asks for shape, size or place (a model trained on random batches
    alone ranked held-out scenes by colour and knew no places). A near miss next to every scene is a
    hard negative that only the changed attribute separates (as in NegCLIP, Yuksekgonul et al. 2023).
    New (colour, shape) pairs come from the split's own pairs, so a training batch never shows a
    held-out pair.
    """
    from alltokens.data.shapes import COLOURS, SHAPES, Obj, Scene
    from alltokens.data.shapes.scene import ALL_PAIRS, TRAIN_PAIRS

    objs = list(scene.objects)
    i = rng.randrange(len(objs))
    o = objs[i]
    free = sorted(set(range(9)) - {p.row * 3 + p.col for p in objs})
    taken = {p.pair for p in objs}
    allowed = set(TRAIN_PAIRS if split == "train" else ALL_PAIRS)
    colours = [c for c in COLOURS if (c, o.shape) in allowed and (c, o.shape) not in taken]
    shapes = [s for s in SHAPES if (o.colour, s) in allowed and (o.colour, s) not in taken]
    # weighted towards what the image tower learns last: places and shapes (colour it learns first)
    changes = ["move"] * 3 + ["size"] * 2 + ["colour"] * bool(colours) + ["shape"] * 3 * bool(shapes)
    changes += ["swap"] * 2 * (len(objs) > 1)
    change = rng.choice(changes)
    if change == "move":
        cell = rng.choice(free)
        objs[i] = Obj(o.shape, o.colour, o.size, cell // 3, cell % 3)
    elif change == "size":
        objs[i] = Obj(o.shape, o.colour, "small" if o.size == "large" else "large", o.row, o.col)
    elif change == "colour":
        objs[i] = Obj(o.shape, rng.choice(colours), o.size, o.row, o.col)
    elif change == "shape":
        objs[i] = Obj(rng.choice(shapes), o.colour, o.size, o.row, o.col)
    else:
        j = rng.choice([k for k in range(len(objs)) if k != i])
        p = objs[j]
        objs[i], objs[j] = (
            Obj(o.shape, o.colour, o.size, p.row, p.col),
            Obj(p.shape, p.colour, p.size, o.row, o.col),
        )
    return Scene(tuple(sorted(objs, key=lambda x: (x.row, x.col))), scene.background)


class DigitsSource:
    """Digit scans of `split`, drawn at random (with replacement), a random phrasing of the label each."""

    def __init__(self, seed: int, split: str, size: int):
        from alltokens.data.digits import load_digits_split

        self.examples = load_digits_split(split, size)
        self.seed = seed

    def item(self, index: int) -> tuple[Image.Image, str, int]:
        from alltokens.data.digits import digit_caption

        rng = random.Random(f"digits:{self.seed}:{index}")
        image, label = self.examples[rng.randrange(len(self.examples))]
        return image, digit_caption(label, rng), label


class FolderSource:
    """Images with their captions, held in memory; an item is a random image and one of its captions."""

    def __init__(self, items: Sequence[tuple[Image.Image, list[str]]], seed: int, name: str):
        if not items:
            raise ValueError(f"{name} holds no image-caption pairs")
        self.items = list(items)
        self.seed = seed

    def item(self, index: int) -> tuple[Image.Image, str, int]:
        rng = random.Random(f"folder:{self.seed}:{index}")
        image, texts = self.items[rng.randrange(len(self.items))]
        return image, rng.choice(texts), text_group(texts[0])


def read_folder(directory: str | Path) -> tuple[list[tuple[Path, list[str]]], str]:
    """The (image file, captions) pairs of a `write_shapes` folder or of an images + `.txt` folder,
    sorted by file name, and a SHA-256 fingerprint of the files and captions."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(
            f"image-text data {root} is not a directory (nor one of {', '.join(SOURCES)})"
        )
    scenes = root / "scenes.jsonl"
    pairs: list[tuple[Path, list[str]]] = []
    if scenes.is_file():
        for n, line in enumerate(scenes.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                file, texts = record["file"], list(record["captions"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(
                    f"{scenes} line {n}: not a scene record with 'file' and 'captions' ({e})"
                ) from None
            if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
                raise ValueError(f"{scenes} line {n}: 'captions' must be a nonempty list of texts")
            pairs.append((root / file, texts))
    else:
        images = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for image in images:
            caption = image.with_suffix(".txt")
            if not caption.is_file():
                raise FileNotFoundError(f"{image} has no caption file {caption.name} beside it")
            texts = [t.strip() for t in caption.read_text(encoding="utf-8").splitlines() if t.strip()]
            if not texts:
                raise ValueError(f"{caption} is empty: a caption file holds one caption per nonempty line")
            pairs.append((image, texts))
    if not pairs:
        raise ValueError(
            f"{root} holds no training data: expected a shapes folder (scenes.jsonl + images/, from "
            "`alltokens data shapes`) or images each with a same-stem .txt caption"
        )
    digest = hashlib.sha256()
    for path, texts in pairs:
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        digest.update(path.read_bytes())
        digest.update(json.dumps(texts).encode())
    return pairs, digest.hexdigest()


def folder_sources(directory: str | Path, seed: int, size: int) -> tuple[FolderSource, FolderSource, str]:
    """(training, validation, fingerprint) of a folder; each image loaded once and fitted to `size` the
    way `pipelines.clip.CLIPModel` fits what it is given (short side scaled, centre cropped)."""
    pairs, fingerprint = read_folder(directory)
    if len(pairs) < 2:
        raise ValueError(f"{directory} holds {len(pairs)} image; training and validation need at least 2")
    items = [(fit_image(load_image(path), size, "crop"), texts) for path, texts in pairs]
    n_val = max(1, int(len(items) * VAL_FRACTION))
    train = FolderSource(items[:-n_val], seed, f"{directory} (training part)")
    val = FolderSource(items[-n_val:], seed + 1, f"{directory} (validation part)")
    return train, val, fingerprint


def image_text_sources(data: str | Path, seed: int, size: int) -> tuple[Source, Source, str]:
    """(training source, validation source, data identity) for 'shapes', 'digits' or a directory."""
    if str(data) == "shapes":
        return ShapesSource(seed, "train", size), ShapesSource(seed + 1, "heldout", size), "shapes"
    if str(data) == "digits":
        return DigitsSource(seed, "train", size), DigitsSource(seed + 1, "test", size), "digits"
    if not Path(data).exists():
        raise ValueError(
            f"unknown image-text data {str(data)!r}: expected {' or '.join(SOURCES)} or a directory"
        )
    return folder_sources(data, seed, size)


def encode_captions(
    tokenizer: Tokenizer, texts: Sequence[str], context: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts -> (ids (B, T) right-padded, attention_mask (B, T) bool) for CLIP's text tower.

    Each text is encoded with the tokenizer's special tokens (a Hugging Face CLIP tokenizer adds its
    start and end tokens; ours add none) and ends in the end-of-text token, appended when not already
    last. A text longer than `context` tokens is an error naming it: cutting it would lose the token
    the tower pools at.
    """
    eos = tokenizer.eos_id
    if eos is None:
        raise ValueError("CLIP's text tower needs a tokenizer with an end-of-text token")
    rows = []
    for text in texts:
        row = tokenizer.encode(text, add_special_tokens=True)
        if not row or row[-1] != eos:
            row.append(eos)
        if len(row) > context:
            raise ValueError(
                f"the text {text!r} is {len(row)} tokens long, over the text context of {context} tokens"
            )
        rows.append(row)
    T = max(map(len, rows))
    pad = next((i for i in (tokenizer.pad_id, eos) if i is not None), 0)
    ids = torch.full((len(rows), T), pad, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(rows), T), dtype=torch.bool)  # (B, T)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row)
        mask[b, : len(row)] = True
    return ids, mask


class ImageTextBatches:
    """Iterable of {"pixels" (B, 3, h, w), "ids" (B, T), "attention_mask" (B, T), "groups" (B,)}.

    Batch `index` of `rank` holds the source's items `(index * world_size + rank) * B ...`, so ranks
    never share an item. Iteration starts at batch `position` (0 unless `seek` moved it), so a
    validation set built from this class yields the same batches at every evaluation.
    """

    def __init__(
        self,
        source: Source,
        tokenizer: Tokenizer,
        batch_size: int,
        image_size: int,
        context: int,
        mean: Sequence[float],
        std: Sequence[float],
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 2:
            raise ValueError(f"contrastive training needs batches of at least 2 pairs, got {batch_size}")
        self.source, self.tokenizer = source, tokenizer
        self.batch_size, self.image_size, self.context = batch_size, image_size, context
        self.mean, self.std = tuple(mean), tuple(std)
        self.rank, self.world_size = rank, world_size
        self.position = 0

    def seek(self, index: int) -> None:
        """Make the next iteration start at batch `index` (exact resume)."""
        self.position = index

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        first = (index * self.world_size + self.rank) * self.batch_size
        images, texts, groups = zip(*(self.source.item(first + j) for j in range(self.batch_size)))
        ids, mask = encode_captions(self.tokenizer, texts, self.context)  # (B, T), (B, T)
        pixels = to_pixels(images, self.image_size, mean=self.mean, std=self.std)  # (B, 3, h, w)
        return {"pixels": pixels, "ids": ids, "attention_mask": mask, "groups": torch.tensor(groups)}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return (self.batch(i) for i in itertools.count(self.position))

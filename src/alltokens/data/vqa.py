"""Conversations with images as token ids, and the shapes batches that train a VLM on them.

The prompt format, built only here (training, `pipelines.vlm` and the tests all call `ChatFormat`):

    <|user|>what colour is the circle?<|image_start|><|image|> x K<|image_end|><|end|><|assistant|>red<|end|>

Each turn is a role token, its content and `<|end|>`; a prompt for generation ends with `<|assistant|>`
and the model writes the answer and its own `<|end|>`, which is where decoding stops. An image is a
block of K placeholders between `<|image_start|>` and `<|image_end|>` (the markers tell the LM where an
image begins and ends, which matters once several images or tiles share a prompt). K is given per image,
so a tiled image is one block of all its tiles' tokens (`tiled_pixels`: overview first, then the grid
row-major) and needs no change here. In a message's text each `<|image|>` marker stands
for one of its images; a message with images and no markers gets them all after its text.

Why the image goes after the question: in a causal LM the image tokens then see the question, so each
can tell whether it is what the question names, and the answer only has to find the token that says so.
With the image first, the question's words must find the image tokens and the answer must find those
words: two lookups that a new LM takes thousands of steps to form (measured in `train.recipes.vlm`).
LLaVA's own instruction data has the image on either side of the question. No bos: the first token is
always a role token, never a placeholder, so a left-padded batch (the engine repeats the first token as
padding) never gains placeholders.

Training targets are the assistant's tokens and the `<|end|>` closing them: the loss mask of
`train.objectives.next_token` (answer-only loss).

Batches (`VQABatches`): item i of a shapes stream, rendered at the vision tower's size, becomes
conversations about that image: the caption (the canonical one, `shapes.caption(scene)`, answering
`CAPTION_PROMPT`), or `questions` questions of different kinds drawn among those the scene has (relations
need two objects), phrased at random, with the caption asked instead of one of them for a
`caption_fraction` of the images. Each question is its own one-turn conversation, a row of the batch,
rather than a turn of one long conversation: only a first question would come before the image. The
rows of one image share one pass of the vision tower (`image_index`), so every answer is a target that
needs the image and the image is paid for once. Every choice for item i comes from an rng seeded with
(seed, i), so batch n is a pure function of n: `seek` resumes exactly.

Colour noising (`colour_noise`, data noising as in Xie et al. 2017): a colour word in a reply is, as an
input, swapped for a random colour with that probability, the targets staying true (`inputs` beside
`ids`, read by `train.objectives.next_token`). Why: a caption says the colour before the shape, and in
training a colour word is only ever followed by the shapes seen in that colour, so the LM learns that
"red" is never followed by "triangle" and captions a held-out red triangle as a red circle. With the
colour words unreliable as inputs the shape has to come from the image (measured in `train.recipes.vlm`).

Question noising (`question_noise`): the same idea for the prior a question's own words carry. A shape
question names its object by colour ("what shape is the red object?") and a colour question by shape
("what colour is the triangle?"); in training "red" never asks after a triangle, so the LM learns that
the answer to a red object's shape is never "triangle" and answers a held-out red triangle with the
shape seen in red, even alone in the picture. When every object of the scene has the same answer (one
object, or all of one shape for a shape question, all of one colour for a colour question), the word
that names the object does not change the answer, so it is swapped, as written, for a random colour
(shape questions) or shape (colour questions) with that probability; the answer stays true. Other
questions keep their words: there they pick out the object asked about.

Tiling and large scenes: images are tiled as the VLM's config says (`VLMConfig.layout`; one tile when
tiling is off), so pixels are all the batch's tiles, row after row, and each row holds its image's
tiles x K placeholders. With `canvas` the scenes are small objects in a larger picture
(`shapes.canvas`), asked only the questions and captions that stay true there.

Shape notation: B images in a batch, R rows (conversations), N encoder images (tiles) in a batch, T
tokens, h, w pixels.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from alltokens.data.shapes import (
    COLOURS,
    QA,
    SHAPES,
    Scene,
    canvas_captions,
    canvas_questions,
    caption,
    questions,
    scene_stream,
)
from alltokens.models.vit import ViTConfig
from alltokens.models.vlm import VLMConfig
from alltokens.tokenizers.image import to_pixels
from alltokens.tokenizers.tiling import TileLayout, tile_image

IMAGE, IMAGE_START, IMAGE_END = "<|image|>", "<|image_start|>", "<|image_end|>"
USER, ASSISTANT, END = "<|user|>", "<|assistant|>", "<|end|>"
ROLES = {"user": USER, "assistant": ASSISTANT}
CAPTION_PROMPT = "describe the picture."
TASKS = ("caption", "qa")


class ChatFormat:
    """Messages with images -> prompt ids (and training targets) in the format of the module docstring."""

    def __init__(self, tokenizer: Any):
        names = (IMAGE, IMAGE_START, IMAGE_END, USER, ASSISTANT, END)
        missing = [t for t in names if tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"the tokenizer lacks the special token(s) {missing} that VLM prompts need")
        self.tokenizer = tokenizer
        self.id = {t: tokenizer.token_to_id(t) for t in names}
        self.image_id, self.end_id = self.id[IMAGE], self.id[END]

    def content(self, text: str, image_tokens: Sequence[int]) -> list[int]:
        """A message's text with one placeholder block per image (image_tokens[i] placeholders)."""
        parts = text.split(IMAGE)
        if len(parts) == 1:
            parts = parts + [""] * len(image_tokens)  # no markers: the images after the text
        elif len(parts) - 1 != len(image_tokens):
            raise ValueError(
                f"the text has {len(parts) - 1} {IMAGE} marker(s) but {len(image_tokens)} image(s) were given"
            )
        ids = self.tokenizer.encode(parts[0])
        for k, part in zip(image_tokens, parts[1:]):
            ids += [self.id[IMAGE_START], *[self.image_id] * k, self.id[IMAGE_END]]
            ids += self.tokenizer.encode(part)
        return ids

    def encode(
        self,
        messages: Sequence[Mapping[str, Any]],
        image_tokens: Sequence[int],
        generation_prompt: bool = True,
    ) -> tuple[list[int], list[bool]]:
        """Messages {"role": "user"|"assistant", "content": str, "images": [...] (optional)} -> (ids,
        targets): targets are True on the assistant's tokens and their `<|end|>`. `image_tokens` holds
        each image's token count, in order over all messages. With `generation_prompt`, a conversation
        ending in a user turn gets `<|assistant|>` appended."""
        if not messages:
            raise ValueError("a conversation needs at least one message")
        n_images = sum(len(m.get("images") or ()) for m in messages)
        if n_images != len(image_tokens):
            raise ValueError(
                f"the messages hold {n_images} image(s) but {len(image_tokens)} token counts were given"
            )
        ids: list[int] = []
        targets: list[bool] = []
        start = 0
        for i, m in enumerate(messages):
            role = m.get("role")
            if role not in ROLES:
                raise ValueError(f"message {i} has role {role!r}; expected 'user' or 'assistant'")
            if not isinstance(m.get("content"), str):
                raise ValueError(f"message {i} needs a 'content' string")
            count = len(m.get("images") or ())
            body = self.content(m["content"], image_tokens[start : start + count]) + [self.end_id]
            start += count
            ids += [self.id[ROLES[role]], *body]
            targets += [False] + [role == "assistant"] * len(body)
        if generation_prompt and messages[-1]["role"] == "user":
            ids.append(self.id[ASSISTANT])
            targets.append(False)
        return ids, targets

    def example(self, turns: Sequence[tuple[str, str]], image_tokens: int) -> tuple[list[int], list[bool]]:
        """One training conversation about one image: the image comes with the first user turn (after
        its text), then each (question, answer) pair is a user turn and the assistant's reply."""
        messages: list[dict[str, Any]] = []
        for i, (question, answer) in enumerate(turns):
            messages.append({"role": "user", "content": question, "images": [None] if i == 0 else []})
            messages.append({"role": "assistant", "content": answer})
        return self.encode(messages, [image_tokens])


def image_pixels(images: Sequence[Image.Image], vision: ViTConfig) -> torch.Tensor:
    """RGB images -> (N, 3, h, w) pixels the way `vision` was trained: padded to a square of its size
    (aspect kept, LLaVA's expand-to-square) and normalised with its mean and std."""
    return to_pixels(images, vision.image_size, "pad", vision.image_mean, vision.image_std)


def tiled_pixels(
    images: Sequence[Image.Image], cfg: VLMConfig, max_image_tokens: int | None = None
) -> tuple[torch.Tensor, list[TileLayout]]:
    """RGB images -> the pixels of all their tiles (N, 3, h, w), image after image, each image's tiles
    in `tile_image`'s order (overview first, then the grid row-major), and each image's layout
    (`cfg.layout` within `max_image_tokens`). Tiling off: one tile per image, `image_pixels` of it."""
    layouts = [cfg.layout(*image.size, max_image_tokens) for image in images]
    tiles = [tile for image, layout in zip(images, layouts) for tile in tile_image(image, layout)]
    return image_pixels(tiles, cfg.vision), layouts  # (N, 3, h, w)


def colour_word_ids(tokenizer: Any) -> list[int]:
    """The token of each colour word as a caption says it (after a space): colour noising swaps one
    token for another, so a colour word of several tokens is an error."""
    ids = []
    for colour in COLOURS:
        pieces = tokenizer.encode(f" {colour}")
        if len(pieces) != 1:
            raise ValueError(
                f"colour_noise needs every colour word to be one token, but ' {colour}' is {len(pieces)} "
                "tokens of this tokenizer; use the shapes BPE (train.recipes.clip) or set colour_noise 0"
            )
        ids.append(pieces[0])
    return ids


def renamed(qa: QA, scene: Scene, rng: random.Random) -> QA:
    """A shape (colour) question whose answer is the same for every object of `scene`, with the colour
    (shape) word that names its object swapped for a random one; any other question as it is (question
    noising, module docstring)."""
    words = {"shape": COLOURS, "colour": SHAPES}.get(qa.kind)  # what names the object asked about
    if words is None or len({getattr(o, qa.kind) for o in scene.objects}) != 1:
        return qa
    word = re.compile(rf"\b({'|'.join(words)})\b")
    return dataclasses.replace(qa, question=word.sub(rng.choice(words), qa.question, count=1))


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of sequences of these `lengths` grouped into rows of at most `capacity` tokens each,
    first fit in order of decreasing length (at most about 11/9 of the fewest rows possible: Johnson 1973).
    Each row keeps its sequences in the order they were given."""
    if any(n > capacity for n in lengths):
        raise ValueError(f"a sequence of {max(lengths)} tokens does not fit rows of {capacity}")
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        r = next((r for r, free in enumerate(room) if free >= lengths[i]), len(rows))
        if r == len(rows):
            rows.append([])
            room.append(capacity)
        rows[r].append(i)
        room[r] -= lengths[i]
    return [sorted(row) for row in rows]


class VQABatches:
    """Endless batches {"pixels" (N, 3, h, w), "image_index" (R',), "ids" (R, T+1), "loss_mask" (R, T+1),
    "segments" (R, T+1)}
    of `batch_size` shapes scenes, rendered and tiled for the VLM of `cfg` (N = B without tiling).

    `task="caption"` makes one caption conversation per image (stage 1); `"qa"` makes `questions`
    one-question conversations per image, of different kinds, the caption asked instead of one of them
    for a `caption_fraction` of the images so that captioning survives stage 2 (see the module
    docstring). Rows are the images' conversations, image after image; `image_index` lists, row after
    row, which of the N encoder images fill that row's placeholders (`VLM.forward`). With `pack` (the
    default) the conversations are packed into rows of up to twice the longest one (`pack_rows`), and
    "segments" (R, T+1) says which conversation of its row each token belongs to, so that each attends
    only to itself (`objectives.next_token`): one-question conversations are about half the length of a
    caption, and padding them all to it left 45% of the language model's tokens padding (11% packed;
    `bench/vlm_train.py`). Rows are
    right-padded (causal attention never looks ahead, so padding needs no mask) and padding is no target.
    An example longer than `context` (the model's, when given) is an error, not silently cut. `canvas`
    (width, height) and `aligned` place each scene in a larger picture (`shapes.canvas`). With
    `colour_noise` > 0 batches also hold "inputs" (R, T+1): `ids` with reply colour words noised (see
    the module docstring); each colour word must then be one token of the tokenizer. `question_noise`
    renames the object of shape and colour questions whose answer no name changes (`renamed`).
    """

    def __init__(
        self,
        chat: ChatFormat,
        cfg: VLMConfig,
        batch_size: int,
        seed: int,
        task: str = "qa",
        questions: int = 1,
        caption_fraction: float = 0.0,
        split: str = "train",
        rank: int = 0,
        world_size: int = 1,
        context: int | None = None,
        canvas: tuple[int, int] | None = None,
        aligned: bool = True,
        colour_noise: float = 0.0,
        question_noise: float = 0.0,
        pack: bool = True,
    ):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        if questions < 1:
            raise ValueError(f"questions must be >= 1, got {questions}")
        if not 0 <= caption_fraction <= 1:
            raise ValueError(f"caption_fraction must be in [0, 1], got {caption_fraction}")
        if not 0 <= colour_noise <= 1:
            raise ValueError(f"colour_noise must be in [0, 1], got {colour_noise}")
        if not 0 <= question_noise <= 1:
            raise ValueError(f"question_noise must be in [0, 1], got {question_noise}")
        self.colour_noise, self.question_noise = colour_noise, question_noise
        self.colour_ids = colour_word_ids(chat.tokenizer) if colour_noise > 0 else []
        self.chat, self.cfg = chat, cfg
        self.batch_size, self.seed, self.task = batch_size, seed, task
        self.questions, self.caption_fraction = questions, caption_fraction
        self.scenes = scene_stream(seed, split, cfg.vision.image_size, canvas, aligned)
        self.pad_id = chat.tokenizer.pad_id if chat.tokenizer.pad_id is not None else chat.end_id
        self.rank, self.world_size, self.context = rank, world_size, context
        self.pack = pack
        self.position = 0

    def item(self, index: int) -> tuple[Image.Image, list[tuple[str, str]]]:
        """(image, [(question, answer), ...]) of stream item `index`: one pair per conversation."""
        image, scene = self.scenes[index]
        rng = random.Random(f"vqa:{self.seed}:{index}")
        large = self.scenes.canvas is not None
        described = canvas_captions(scene)[0] if large else caption(scene)
        if self.task == "caption":
            return image, [(CAPTION_PROMPT, described)]
        qas = canvas_questions(scene, rng) if large else questions(scene, rng)
        if self.question_noise > 0:
            noise = random.Random(f"question-noise:{self.seed}:{index}")
            qas = [renamed(qa, scene, noise) if noise.random() < self.question_noise else qa for qa in qas]
        kinds = sorted({qa.kind for qa in qas})
        rng.shuffle(kinds)
        pairs = [
            (qa.question, qa.answer)
            for qa in (self._pick(qas, kind, rng) for kind in kinds[: self.questions])
        ]
        if rng.random() < self.caption_fraction:
            pairs[rng.randrange(len(pairs))] = (CAPTION_PROMPT, described)
        return image, pairs

    @staticmethod
    def _pick(qas: list[QA], kind: str, rng: random.Random) -> QA:
        return rng.choice([qa for qa in qas if qa.kind == kind])

    def batch(self, n: int) -> dict[str, torch.Tensor]:
        """Batch `n` of this rank: under torchrun rank r takes every world_size-th batch of the stream."""
        first = (n * self.world_size + self.rank) * self.batch_size
        items = [self.item(first + j) for j in range(self.batch_size)]
        pixels, layouts = tiled_pixels([image for image, _ in items], self.cfg)  # (N, 3, h, w)
        convs, tiles, tile = [], [], 0  # one (ids, targets, inputs) per conversation, and its tiles
        for j, ((_, pairs), layout) in enumerate(zip(items, layouts)):
            rng = random.Random(f"noise:{self.seed}:{first + j}") if self.colour_noise > 0 else None
            for pair in pairs:
                ids, targets = self.chat.example([pair], layout.image_tokens)
                convs.append((ids, targets, self._noised(ids, targets, rng) if rng is not None else ids))
                tiles.append(range(tile, tile + layout.tiles))
            tile += layout.tiles
        longest = max(len(ids) for ids, _, _ in convs)
        if self.context is not None and self.context < longest - 1:
            raise ValueError(
                f"a training example of {longest - 1} input tokens exceeds the language model's context of "
                f"{self.context} tokens; use a model with a longer context"
            )
        lengths = [len(ids) for ids, _, _ in convs]
        rows = pack_rows(lengths, 2 * longest) if self.pack else [[c] for c in range(len(convs))]
        T = max(sum(lengths[c] for c in row) for row in rows)
        ids = torch.full((len(rows), T), self.pad_id, dtype=torch.long)  # (R, T+1)
        loss_mask = torch.zeros((len(rows), T), dtype=torch.bool)  # (R, T+1)
        inputs = ids.clone() if self.colour_noise > 0 else ids  # (R, T+1)
        segments = torch.full((len(rows), T), -1, dtype=torch.long)  # (R, T+1), padding in segment -1
        for r, row in enumerate(rows):
            start = 0
            for k, c in enumerate(row):
                conv, targets, noised = convs[c]
                span = slice(start, start + len(conv))
                ids[r, span], loss_mask[r, span] = torch.tensor(conv), torch.tensor(targets)
                segments[r, span] = k
                if self.colour_noise > 0:
                    inputs[r, span] = torch.tensor(noised)
                start += len(conv)
        index = torch.tensor([t for row in rows for c in row for t in tiles[c]], dtype=torch.long)  # (R',)
        out = {"pixels": pixels, "image_index": index, "ids": ids, "loss_mask": loss_mask}
        if self.pack:
            out["segments"] = segments
        return out | {"inputs": inputs} if self.colour_noise > 0 else out

    def _noised(self, ids: list[int], targets: list[bool], rng: random.Random) -> list[int]:
        """`ids` with each colour word of a reply (a target) swapped for a random colour with
        probability `colour_noise` (possibly the same colour)."""
        colours = set(self.colour_ids)
        return [
            rng.choice(self.colour_ids) if t and i in colours and rng.random() < self.colour_noise else i
            for i, t in zip(ids, targets)
        ]

    def seek(self, n: int) -> None:
        """Make the next iteration start at batch `n` (exact resume)."""
        self.position = n

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        n = self.position
        while True:
            yield self.batch(n)
            n += 1

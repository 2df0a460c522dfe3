"""`VisionLanguageModel`: a VLM with its tokenizer, taking images and text and giving text.

One path serves `ask`, `caption`, `generate` and `stream`: messages -> `data.vqa.ChatFormat` ids (the
one prompt format) -> the images' tokens, computed once per request -> the shared engine driving
`VLM.with_images` -> the text layer (`TextStream`, `text_pieces`) that `TextModel` uses too. Decoding
stops at the `<|end|>` that closes the assistant's turn.

Greedy by default (`temperature=0`): questions about a picture have one right answer, and a caption
should be the same every time. `max_new_tokens=None` means up to 64 tokens, fewer when the context has
less room left; an explicit value is checked against the context by the engine.

Every image goes through `tokenizers.image.load_image` (path, bytes or PIL image): a truncated or
non-image file is an `ImageError` naming it; grayscale, palette and alpha images are converted.

Images are tiled as the model's config says (AnyRes, `VLMConfig.layout`; one tile when tiling is off),
under the config's image-token budget or a request's own `max_image_tokens`. `layouts` reports what a
request would choose, without encoding anything; a budget too small for one tile is a `ValueError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from alltokens.data.vqa import CAPTION_PROMPT, ChatFormat, tiled_pixels
from alltokens.generate.engine import generate_ids
from alltokens.generate.sampling import SamplingSettings
from alltokens.generate.text import TextStream
from alltokens.models.vlm import VLM
from alltokens.nn.inference import optimize_for_inference
from alltokens.pipelines.text import text_pieces
from alltokens.tokenizers.image import load_image
from alltokens.tokenizers.tiling import TileLayout

DEFAULT_NEW_TOKENS = 64
Prompt = str | Sequence[Mapping[str, Any]]


class VisionLanguageModel:
    def __init__(self, model: VLM, tokenizer: Any):
        self.model = optimize_for_inference(model)  # in place; inference only from here on
        self.tokenizer = tokenizer
        self.chat = ChatFormat(tokenizer)
        self.cfg = model.cfg

    def ask(self, image: Any, question: str, **sampling: Any) -> str:
        """The answer to a question about one image (a path, bytes or a PIL image)."""
        return self.generate([{"role": "user", "content": question, "images": [image]}], **sampling)

    def caption(self, image: Any, **sampling: Any) -> str:
        """A description of one image: the objects it shows and where."""
        return self.ask(image, CAPTION_PROMPT, **sampling)

    def generate(self, prompt: Prompt, images: Sequence[Any] = (), **sampling: Any) -> str:
        """The assistant's reply to `prompt`: a string with one `<|image|>` marker per image in `images`
        (none: the images go after the text), or a list of chat messages {"role": "user"|"assistant",
        "content": str, "images": [...]} for several turns. Sampling arguments and `max_image_tokens` as
        `stream`."""
        return "".join(self.stream(prompt, images, **sampling))

    def stream(
        self,
        prompt: Prompt,
        images: Sequence[Any] = (),
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repetition_penalty: float = 1.0,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        max_image_tokens: int | None = None,
    ) -> Iterator[str]:
        """The reply piece by piece as it is generated. Bad arguments raise here, before any step.
        `max_image_tokens` caps each image's tokens for this request (None: the model's default)."""
        settings = SamplingSettings(
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            repetition_penalty=repetition_penalty,
            seed=seed,
        )
        messages = _messages(prompt, images)
        loaded = [load_image(im) for m in messages for im in m.get("images") or ()]
        image_embeds, counts = self.image_tokens(loaded, max_image_tokens)  # (M, C), tokens per image
        ids, _ = self.chat.encode(messages, counts)
        if max_new_tokens is None:
            room = self.cfg.lm.max_position_embeddings - len(ids)
            max_new_tokens = min(DEFAULT_NEW_TOKENS, room) if room > 0 else DEFAULT_NEW_TOKENS
        steps = generate_ids(
            self.model.with_images(image_embeds), [ids], settings, max_new_tokens, self.chat.end_id
        )
        rows = [TextStream(self.tokenizer, ids, stop)]
        return (piece for _, piece in text_pieces(steps, rows, self.chat.end_id))

    def image_tokens(
        self, images: Sequence[Image.Image], max_image_tokens: int | None = None
    ) -> tuple[torch.Tensor, list[int]]:
        """Loaded images -> the tokens the LM sees for them, all images' in order (M, C), and how many
        each image has: each image's tiles (overview first, then the grid row-major; one tile when
        tiling is off), each through `VLM.image_tokens`, their tokens concatenated."""
        table = self.model.lm.embed.tokens.weight  # its device and dtype (the embedding is never packed)
        if not images:
            return table.new_zeros(0, self.cfg.lm.hidden_size), []
        pixels, layouts = tiled_pixels(images, self.cfg, max_image_tokens)  # (N, 3, h, w)
        with torch.inference_mode():
            tokens = self.model.image_tokens(pixels.to(table.device, table.dtype))  # (N, K, C)
        return tokens.flatten(0, 1), [layout.image_tokens for layout in layouts]

    def layouts(self, images: Sequence[Any], max_image_tokens: int | None = None) -> list[TileLayout]:
        """The tiles each image (a path, bytes or a PIL image) becomes in a request with this
        `max_image_tokens`."""
        return [self.cfg.layout(*load_image(im).size, max_image_tokens) for im in images]


def _messages(prompt: Prompt, images: Sequence[Any]) -> list[Mapping[str, Any]]:
    """A prompt string (with its images) or a message list -> a message list."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt, "images": list(images)}]
    if images:
        raise ValueError(
            "with a list of messages, give each message's images in its 'images' entry, not images="
        )
    if isinstance(prompt, Mapping) or not all(isinstance(m, Mapping) for m in prompt):
        raise ValueError("a prompt is a string or a list of message dicts {'role', 'content', 'images'}")
    return list(prompt)

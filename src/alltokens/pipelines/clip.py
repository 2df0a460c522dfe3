"""`CLIPModel`: a CLIP with its tokenizer, taking images and texts and giving vectors, classes, ranks.

The same object serves our run directories and Hugging Face CLIP directories (`io.load` builds our
`CLIP` from either). Texts are encoded by `data.image_text.encode_captions`: the tokenizer's own
special tokens (HF CLIP adds its start and end tokens), the end-of-text token last, right padding.
Images go through `tokenizers.image.load_image` (any file or mode becomes RGB; a broken file is an
`ImageError` naming it) and are fitted to the tower's square input by CLIP's own preprocessing:
scale the short side to fit, centre-crop the rest ("crop"), then normalise with the mean and std
recorded in the vision config.

Zero-shot classification is the paper's: the softmax over labels of the scaled cosines between an
image and each label text, using the model's own learned temperature.

Shape notation: N images, L labels or texts, D the joint embedding width.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from alltokens.data.image_text import IMAGE_SUFFIXES, encode_captions
from alltokens.models.clip import CLIP
from alltokens.tokenizers import Tokenizer
from alltokens.tokenizers.image import load_image, to_pixels

ImageLike = Image.Image | str | Path


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly in `folder` (by suffix), sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{root} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


class CLIPModel:
    def __init__(self, model: CLIP, tokenizer: Tokenizer, fit: str = "crop", batch_size: int = 64):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.cfg = model.cfg
        self.fit, self.batch_size = fit, batch_size

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        """(L, D) unit vectors, one per text, in the order given."""
        if isinstance(texts, str):
            raise ValueError("embed_text takes a list of texts, not one string: use embed_text([text])")
        if len(texts) == 0:
            raise ValueError("embed_text needs at least one text, got none")
        context = self.cfg.text.max_position_embeddings
        parts = []
        for i in range(0, len(texts), self.batch_size):
            ids, mask = encode_captions(self.tokenizer, texts[i : i + self.batch_size], context)  # (b, T)
            parts.append(self.model.encode_text(ids, mask).float())  # (b, D)
        return torch.cat(parts)

    @torch.inference_mode()
    def embed_image(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """(N, D) unit vectors, one per image (PIL images or file paths), in the order given."""
        if isinstance(images, (str, Path, Image.Image)):
            raise ValueError("embed_image takes a list of images: use embed_image([image])")
        if len(images) == 0:
            raise ValueError("embed_image needs at least one image, got none")
        vision = self.cfg.vision
        parts = []
        for i in range(0, len(images), self.batch_size):
            rgb = [load_image(im) for im in images[i : i + self.batch_size]]
            pixels = to_pixels(rgb, vision.image_size, self.fit, vision.image_mean, vision.image_std)
            parts.append(self.model.encode_image(pixels).float())  # (b, D)
        return torch.cat(parts)

    @torch.inference_mode()
    def classify(self, images: Sequence[ImageLike], labels: Sequence[str]) -> torch.Tensor:
        """(N, L) probabilities: row n is the softmax over `labels` (in their order) for image n."""
        if isinstance(labels, str) or len(labels) == 0:
            raise ValueError("classify needs a nonempty list of label texts")
        txt = self.embed_text(labels)  # (L, D)
        img = self.embed_image(images)  # (N, D)
        return (self.model.scale().float() * img @ txt.T).softmax(dim=-1)  # (N, L)

    @torch.inference_mode()
    def search(
        self, query: str, images: Sequence[ImageLike] | str | Path, top_k: int = 5
    ) -> list[tuple[int | Path, float]]:
        """The `top_k` images nearest to the text `query` by cosine, best first, as (image, score).

        `images` is a list (results name each by its index) or a folder (results name the files).
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError("the search query is empty")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        names: Sequence[int | Path]
        if isinstance(images, (str, Path)):
            images = image_files(images)
            names = images
        else:
            names = range(len(images))
        scores = self.embed_image(images) @ self.embed_text([query])[0]  # (N,)
        best = scores.topk(min(top_k, len(scores)))
        return [(names[i], s) for i, s in zip(best.indices.tolist(), best.values.tolist())]

"""A self-contained HTML report: sections of text, tables, images (embedded) and coloured tokens.

The demo writes one, and later capabilities add their sections to it. The page has no external
assets (images are embedded as data URIs), so it can be mailed or opened offline.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alltokens.io.checkpoint import atomic_write

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ddd; padding: 4px 8px; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre, .tokens { background: #f8f8f8; padding: .6em; border-radius: 4px; white-space: pre-wrap; }
.tokens span { border-radius: 3px; padding: 1px 0; margin-right: 1px; }
.tokens span.t0 { background: #ffe08a; } .tokens span.t1 { background: #a8e6ff; } .tokens span.t2 { background: #c6f5b0; }
.tokens span.t3 { background: #ffc4e1; } .tokens span.special { background: #555; color: #fff; }
.completion { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 13px; }
.muted { color: #777; } img { max-width: 100%; } img.pixel { image-rendering: pixelated; }
.right { color: #1a7f37; } .wrong { color: #cf222e; }
"""


class Html(str):
    """A fragment of trusted HTML made by this package: table cells holding one are not escaped."""


def completion_html(prompt: str, completion: str) -> Html:
    """The prompt in bold, then the model's continuation, with line breaks kept."""
    return Html(f'<span class="completion"><b>{html.escape(prompt)}</b>{html.escape(completion)}</span>')


def token_html(pieces: Sequence[tuple[str, int]], special_ids: frozenset[int] = frozenset()) -> str:
    """Tokens as coloured spans (4 alternating colours, so every boundary shows); the id in a tooltip."""
    spans = []
    for k, (text, token_id) in enumerate(pieces):
        cls = "special" if token_id in special_ids else f"t{k % 4}"
        shown = html.escape(text).replace("\n", "↵\n")
        spans.append(f'<span class="{cls}" title="id {token_id}">{shown}</span>')
    return Html('<div class="tokens">' + "".join(spans) + "</div>")


def png_data_uri(image: Any) -> str:
    """A PIL image or a PNG file as a data URI, so the page needs no other files."""
    if isinstance(image, (str, Path)):
        data = Path(image).read_bytes()
    else:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode()


def image_html(image: Any, width: int | None = None, alt: str = "") -> Html:
    """An inline image for a table cell; `width` scales it up with crisp pixels (small renders)."""
    size = f' width="{width}" class="pixel"' if width else ""
    return Html(f'<img src="{png_data_uri(image)}" alt="{html.escape(alt)}"{size}>')


def verdict_html(text: str, right: bool) -> Html:
    """`text` marked right (green ✓) or wrong (red ✗)."""
    mark, cls = ("✓", "right") if right else ("✗", "wrong")
    return Html(f'<span class="{cls}">{mark} {html.escape(text)}</span>')


class Report:
    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str, muted: bool = False) -> None:
        cls = ' class="muted"' if muted else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def code(self, text: str) -> None:
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def raw(self, fragment: str) -> None:
        """Trusted HTML made by this package (e.g. `token_html`)."""
        self.parts.append(fragment)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        def cell(v: object) -> str:
            if isinstance(v, Html):
                return f"<td>{v}</td>"
            if isinstance(v, float):
                return f'<td class="num">{v:.3f}</td>'
            return f"<td>{html.escape(str(v))}</td>"

        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def image(self, image: Any, alt: str = "", width: int | None = None) -> None:
        """A PNG file or a PIL image, embedded."""
        self.parts.append(f"<p>{image_html(image, width, alt)}</p>")

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (
            f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        page = self.render()
        atomic_write(path, lambda p: p.write_text(page, encoding="utf-8"))
        return path

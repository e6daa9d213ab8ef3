"""The page's building blocks: escaping, pictures as data URIs, tables, collapsed sections,
and the page shell with its style sheet. Every picture is embedded, so one file is the report."""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Sequence

from matplotlib.figure import Figure
from PIL import Image

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;max-width:1180px;margin:24px auto;padding:0 16px}
h1{font-size:26px;margin:0 0 2px} h2{font-size:20px;border-bottom:2px solid #e4e7eb;padding-bottom:4px;margin:36px 0 10px}
h3{font-size:16px;margin:18px 0 6px} .sub,.note{color:#57606a} .note{font-size:13px;max-width:900px}
nav{font-size:13px;margin:6px 0 0} nav a{margin-right:14px;color:#2f6fdf;text-decoration:none}
.answer{background:#f0f6ff;border-left:4px solid #2f6fdf;padding:8px 12px;margin:12px 0;max-width:1000px}
table.data{border-collapse:collapse;margin:8px 0;font-size:14px}
table.data th,table.data td{border:1px solid #d0d7de;padding:4px 10px;text-align:right;vertical-align:top}
table.data th{background:#f6f8fa} table.data td:first-child,table.data th:first-child{text-align:left}
table.data th small{display:block;font-weight:normal;color:#57606a;max-width:220px;text-align:left}
td.resolved{color:#0b6b2b;font-weight:600} td.unresolved{color:#8c959f}
.scroll{overflow-x:auto}
table.grid{border-collapse:separate;border-spacing:10px 8px;margin:4px 0}
table.grid th{font-size:13px;font-weight:600;text-align:center;vertical-align:bottom}
table.grid th small{display:block;font-weight:normal;color:#57606a}
table.grid th.row{text-align:right;vertical-align:middle;max-width:190px;font-weight:normal}
table.grid td{padding:0;text-align:center;vertical-align:top}
table.grid img{display:block;margin:auto;border:1px solid #6e7781;image-rendering:pixelated}
table.grid .score{font-size:12px;color:#57606a}
details{margin:8px 0;border:1px solid #d0d7de;border-radius:6px;padding:6px 12px}
summary{cursor:pointer;font-weight:600} figure{margin:8px 0} figcaption{font-size:13px;color:#57606a}
img.plot{max-width:100%}
"""


def esc(value) -> str:
    return html.escape(str(value))


def png_uri(picture) -> str:
    """A PIL image or a matplotlib figure → data:image/png;base64,..."""
    buffer = io.BytesIO()
    if isinstance(picture, Figure):
        picture.savefig(buffer, format="png", dpi=100)
    else:
        picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def gif_uri(frames: Sequence[Image.Image], *, duration_ms: int = 160) -> str:
    """Frames of a clip → a looping animated GIF as data:image/gif;base64,..."""
    buffer = io.BytesIO()
    frames = [f.convert("RGB") if f.mode not in ("L", "RGB", "P") else f for f in frames]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=list(frames[1:]), loop=0, duration=duration_ms)
    return "data:image/gif;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def fit(image: Image.Image, target: int) -> Image.Image:
    """Nearest-neighbour upscaling by a whole factor until the long side reaches `target` (a
    16-pixel digit stays crisp), or a smooth downscale of a large image to `target`."""
    side = max(image.size)
    if side < target:
        k = math.ceil(target / side)
        return image.resize((image.width * k, image.height * k), Image.NEAREST)
    if side > 2 * target:
        k = 2 * target / side
        return image.resize((round(image.width * k), round(image.height * k)), Image.LANCZOS)
    return image


def picture_uri(picture, target: int) -> str:
    """A picture (PIL image) or a clip (list of frames) as a data URI, sized for a grid cell; an
    encoded GIF (bytes) as it is."""
    if isinstance(picture, bytes):
        return "data:image/gif;base64," + base64.b64encode(picture).decode("ascii")
    if isinstance(picture, (list, tuple)):
        return gif_uri([fit(f, target) for f in picture])
    return png_uri(fit(picture, target))


def img(uri: str, alt: str, cls: str = "") -> str:
    return f'<img src="{uri}" alt="{esc(alt)}"' + (f' class="{cls}"' if cls else "") + ">"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "data") -> str:
    """Cells are HTML already (escape text with `esc`); a cell given as (html, css class) gets the class."""
    def cell(tag, c):
        return f'<{tag} class="{c[1]}">{c[0]}</{tag}>' if isinstance(c, tuple) else f"<{tag}>{c}</{tag}>"

    head = "".join(cell("th", h) for h in header)
    body = "".join("<tr>" + "".join(cell("td", c) for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def details(summary: str, body: str, *, open_: bool = False) -> str:
    return f"<details{' open' if open_ else ''}><summary>{summary}</summary>{body}</details>"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document: `sections` are (anchor, title, body html), in reading order."""
    nav = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t, _ in sections)
    body = "\n".join(section(a, t, b) for a, t, b in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>{esc(title)}</h1><div class=\"sub\">{subtitle}</div>"
            f"<nav>{nav}</nav>\n{body}\n</body></html>\n")

"""What the report's materialisation carries into Dagster's event log: the Markdown text with
its figures as file paths, and at most one small thumbnail, within a byte budget.

The figures stay files under `reports/<symbol>/`; embedding them (base64) put about 1 MB into
the event log per report.
"""

import base64
import io
import re
from pathlib import Path

from PIL import Image

# SQLite keeps each materialisation twice (the run's shard and the index shard), so one
# report materialisation (its Markdown, the rest of its metadata, the event itself: about
# 3.5 KB) stays under 50 KB when the Markdown stays under this many bytes.
METADATA_BUDGET = 21_000
# The thumbnail: its width in pixels, colours, and at most this many bytes of PNG.
PREVIEW_WIDTH = 320
PREVIEW_COLOURS = 16
PREVIEW_BUDGET = 8_000

IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+\.png)\)")


def thumbnail_png(path: Path, width: int = PREVIEW_WIDTH, budget: int = PREVIEW_BUDGET) -> bytes | None:
    """A palette PNG of `path` at most `width` wide and `budget` bytes, halving the width until it fits."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    while width >= 120:
        small = rgb.copy()
        small.thumbnail((width, width * 4))
        buffer = io.BytesIO()
        small.quantize(colors=PREVIEW_COLOURS).save(buffer, format="PNG", optimize=True)
        if buffer.tell() <= budget:
            return buffer.getvalue()
        width //= 2
    return None


def ui_markdown(text: str, folder: Path, preview: str | None = None, budget: int = METADATA_BUDGET) -> str:
    """The report for the UI: each image link becomes its file path; `preview` (a figure file in
    `folder`) is shown as a thumbnail on top when it fits; the whole stays within `budget` bytes
    (cut at a section heading, with a pointer to the full file, when the text is longer)."""

    def as_path(match: re.Match) -> str:
        return f"*Figure ({match.group(1)}): `{folder / match.group(2)}`*"

    body = IMAGE_LINK.sub(as_path, text)
    names = [m.group(2) for m in IMAGE_LINK.finditer(text)]
    head = "".join(f"- figure: `{folder / name}`\n" for name in names) + "\n" if names else ""
    if preview is not None and (folder / preview).exists():
        png = thumbnail_png(folder / preview)
        if png is not None and 4 * len(png) // 3 < budget // 2:
            encoded = base64.b64encode(png).decode()
            head = f"![preview of {preview}](data:image/png;base64,{encoded})\n\n" + head
    out = head + body
    if len(out.encode()) <= budget:
        return out
    # Too long: whole sections while they fit, then a pointer to the full file.
    note = f"\n\n*Shortened for the event log; the full report is `{folder / 'attention_report.md'}`.*\n"
    room = budget - len(note.encode())
    cut = out.encode()[:room].decode(errors="ignore")
    section = cut.rfind("\n## ")
    return (cut[:section] if section > len(head) else cut) + note

"""A page of a cached paper, or a region of it, as a PNG small enough for one tool result.

The whole result of a tool call is capped (``invoke.MAX_RESULT_CHARS``) and the picture
travels in it as base64, so the PNG is rendered in grey (a third of the bytes of colour)
at the asked resolution and rendered again, smaller, until it fits ``budget`` bytes.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInput, LabError

PAD = 4.0  # points around a region, so a cell's edges stay visible
SHRINK = 0.8
MIN_ZOOM = 0.35  # about 25 dpi: below that nothing is legible


def render(pdf: Path, page_number: int, region: list[float] | None, max_side: int, budget: int) -> tuple[bytes, list[float]]:
    """(PNG bytes, the clip rendered in PDF points) for page ``page_number`` (1-based)."""
    import pymupdf

    doc = pymupdf.open(pdf)
    try:
        if not 1 <= page_number <= doc.page_count:
            raise InvalidInput(f"page {page_number} is outside 1-{doc.page_count}",
                               hint=f"the paper has {doc.page_count} pages")
        page = doc[page_number - 1]
        clip = page.rect
        if region is not None:
            x0, y0, x1, y1 = region
            if not (x0 < x1 and y0 < y1):
                raise InvalidInput(f"region {region} is empty", hint="give x0, y0, x1, y1 with x0 < x1 and y0 < y1")
            clip = pymupdf.Rect(x0 - PAD, y0 - PAD, x1 + PAD, y1 + PAD) & page.rect
            if clip.is_empty:
                raise InvalidInput(f"region {region} lies outside page {page_number} "
                                   f"({page.rect.width:.0f} x {page.rect.height:.0f} points)",
                                   hint="use a bbox from paper_tables or paper_results")
        zoom = min(2.0, (max_side - 1) / max(clip.width, clip.height))  # the pixmap rounds its size up
        while zoom >= MIN_ZOOM:
            png = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), clip=clip, colorspace=pymupdf.csGRAY).tobytes("png")
            if len(png) <= budget:
                return png, [round(v, 1) for v in clip]
            zoom *= SHRINK
        raise LabError(f"page {page_number} does not fit one result as a legible picture",
                       hint="ask for a region of it, e.g. a table's bbox from paper_tables")
    finally:
        doc.close()

"""Everything the lab reads from a PDF, extracted once and kept as JSON next to it.

Text per page, the section outline (the PDF's own outline, else headings found by font
size and numbering), the paper's identity (``identity``: arXiv id, DOI, title, abstract),
code links with the paper's own first (``links``), table captions, stitched tables and
tables that are only pictures (``tables``). Bad PDFs give a clear error (corrupt, encrypted, no pages) or an
explicit warning in the result (repaired, no text layer, page cap reached).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

from ..errors import LabError
from ..registry import Progress, no_progress
from . import identity, links, tables

EXTRACTION_VERSION = 3  # 3: sub-tables under one caption ("subcaption"), appendix labels ("Table A5")
FRONT_MATTER_ZONE = 0.4  # title, authors and affiliations sit in this top share of page 1
MAX_PAGES = 500
NO_TEXT_WARNING = "no text layer, OCR not attempted"
HEADING = re.compile(r"^((\d+(\.\d+){0,2})\.?|[IVX]+\.|[A-H]\.?)\s+[A-Z][^.]{1,80}$|"
                     r"^(Abstract|References|Acknowledg(e)?ments?|Conclusions?|Appendix)$", re.IGNORECASE)


def plain(flags: int) -> int:
    """Text flags with ligatures expanded: 'conﬁg' must read, and match, as 'config'."""
    import pymupdf

    return flags & ~pymupdf.TEXT_PRESERVE_LIGATURES


def open_pdf(path: Path):
    """Open a PDF or raise a LabError that says what is wrong with it."""
    import pymupdf

    try:
        doc = pymupdf.open(path, filetype="pdf")
        encrypted, pages = doc.needs_pass, (0 if doc.needs_pass else doc.page_count)
    except Exception as exc:
        raise LabError(f"the PDF is corrupt or truncated and cannot be opened ({exc})",
                       hint="download it again or use another copy") from None
    if encrypted:
        doc.close()
        raise LabError("the PDF is encrypted and needs a password", hint="use an unencrypted copy")
    if pages == 0:
        doc.close()
        raise LabError("the PDF has no pages", hint="the file is empty or damaged; use another copy")
    return doc


def headings(doc, pages: int) -> list[dict]:
    """A section outline from the text when the PDF has none: short numbered lines set
    larger or bolder than the body text."""
    import pymupdf

    lines = []
    sizes: Counter = Counter()
    for index in range(pages):
        for block in doc[index].get_text("dict", flags=plain(pymupdf.TEXTFLAGS_DICT))["blocks"]:
            for line in block.get("lines", []):
                spans = [s for s in line["spans"] if s["text"].strip()]
                if not spans:
                    continue
                text = " ".join(s["text"].strip() for s in spans)
                size = max(s["size"] for s in spans)
                bold = all(s["flags"] & 16 for s in spans)
                sizes[round(spans[0]["size"])] += len(text)
                lines.append((index, text, size, bold))
    if not sizes:
        return []
    body = sizes.most_common(1)[0][0]
    out = []
    for index, text, size, bold in lines:
        if (size >= body + 1 or bold) and HEADING.match(text):
            level = 1 + text.split()[0].rstrip(".").count(".") if text[0].isdigit() else 1
            out.append({"level": level, "title": text, "page": index + 1})
    return out


def extract(pdf: Path, progress: Progress = no_progress, max_pages: int = MAX_PAGES) -> dict:
    doc = open_pdf(pdf)
    try:
        return _extract(doc, progress, max_pages)
    finally:
        doc.close()


def _extract(doc, progress: Progress, max_pages: int) -> dict:
    import pymupdf

    total = doc.page_count
    pages = min(total, max_pages)
    warnings = []
    if doc.is_repaired:
        warnings.append("the PDF was damaged (truncated or corrupt) and MuPDF repaired it; text or pages may be missing")
    if total > pages:
        warnings.append(f"the PDF has {total} pages; only the first {pages} were processed")
    texts, found_links, captions, page_tables = [], [], [], []
    heights = {}
    image_pages = []
    unreadable = []
    front = _front(doc[0])
    for index in range(pages):
        try:
            page = doc[index]
            text = page.get_text(flags=plain(pymupdf.TEXTFLAGS_TEXT))
            words = page.get_text("words", flags=plain(pymupdf.TEXTFLAGS_WORDS))
        except Exception:  # a damaged page: keep its place, say so, read the rest
            unreadable.append(index + 1)
            texts.append("")
            continue
        texts.append(text)
        heights[index] = page.rect.height
        if _large_images(page):
            image_pages.append(index + 1)
        found_links += links.page_links(page, index, words, front["top"])
        captions += [{"caption": c, "page": index + 1} for c in tables.caption_lines(text)]
        try:
            if cand := tables.candidate(page, index, text, words, page_tables[-1] if page_tables else None):
                page_tables.append(tables.page_parts(page, cand, words, text))
        except Exception as exc:  # one odd page must not cost the whole paper
            warnings.append(f"tables on page {index + 1} could not be extracted ({type(exc).__name__})")
        if index % 10 == 9:
            progress(index + 1, pages, "extracting pages")
    if unreadable:
        warnings.append(f"{len(unreadable)} page(s) could not be read (damaged): {unreadable[:20]}")
    chars = sum(len(t.strip()) for t in texts)
    no_text = [n for n in image_pages if not texts[n - 1].strip()]
    if chars < 20 * pages:
        warnings.append(f"{NO_TEXT_WARNING}: the PDF looks scanned (images without text)"
                        if no_text else f"{NO_TEXT_WARNING}: the PDF has almost no text")
    elif no_text:
        warnings.append(f"{len(no_text)} page(s) are images without text ({NO_TEXT_WARNING})")
    toc = doc.get_toc(simple=True)
    if toc:
        outline = [{"level": lvl, "title": title.strip(), "page": page} for lvl, title, page in toc]
        outline_source = "pdf"
    else:
        outline = headings(doc, pages) if chars else []
        outline_source = "headings" if outline else "none"
    parts, image_tables = tables.give_captions(page_tables)
    stitched = tables.stitch(parts, heights)
    warnings += _image_table_warnings(image_tables, stitched, image_pages)
    meta = doc.metadata or {}
    first_text = texts[0] if texts else ""
    meta_title = (meta.get("title") or "").strip()
    layout_title = identity.title_from_layout(front["dict"], doc[0].rect.width, doc[0].rect.height)
    return {
        "version": EXTRACTION_VERSION,
        "page_count": total,
        "pages_processed": pages,
        "metadata": {"title": _pick_title(meta_title, layout_title),
                     "author": (meta.get("author") or "").strip(),
                     "arxiv_id": identity.arxiv_id(meta, front["dict"], first_text),
                     "doi": identity.doi(meta, first_text),
                     "abstract": identity.abstract(first_text)},
        "texts": texts,
        "outline": outline,
        "outline_source": outline_source,
        "links": links.rank(found_links),
        "table_captions": captions,
        "tables": [t.as_dict(i + 1) for i, t in enumerate(stitched)],
        "image_tables": [{"page": t.page + 1, "caption": t.caption, "bbox": [round(v, 1) for v in t.bbox]}
                         for t in image_tables],
        "warnings": warnings,
    }


def _front(page) -> dict:
    """Page 1 as a text dict, and the text of its top part (title, authors, affiliations)."""
    import pymupdf

    page_dict = page.get_text("dict", flags=plain(pymupdf.TEXTFLAGS_DICT))
    top = page.get_text(clip=pymupdf.Rect(0, 0, page.rect.width, FRONT_MATTER_ZONE * page.rect.height),
                        flags=plain(pymupdf.TEXTFLAGS_TEXT))
    return {"dict": page_dict, "top": top}


def _pick_title(meta_title: str, layout_title: str) -> str:
    """The PDF's title field when it is a real title that page 1 shows; else page 1's."""
    if identity.plausible_metadata_title(meta_title):
        if not layout_title or set(meta_title.lower().split()[:3]) <= set(layout_title.lower().split()):
            return meta_title
    return layout_title or (meta_title if identity.plausible_metadata_title(meta_title) else "")


def _large_images(page) -> bool:
    """Whether an image covers a good part of the page (a picture, a slide, a scan)."""
    area = page.rect.width * page.rect.height
    return any((i["bbox"][2] - i["bbox"][0]) * (i["bbox"][3] - i["bbox"][1]) > 0.1 * area for i in page.get_image_info())


def _image_table_warnings(image_tables: list, stitched: list, image_pages: list[int]) -> list[str]:
    """Tables that are pictures cannot be read as text: say where to look instead."""
    out = [f"{(t.caption.split(':')[0].split('.')[0])[:20]} on page {t.page + 1} is an image, not text: "
           f"look at it with paper_page_image(page={t.page + 1}, "
           f"region={[round(v) for v in t.bbox]})" for t in image_tables]
    if not stitched and not image_tables and image_pages:
        shown = image_pages[:10]
        out.append(f"no text tables found, but {len(image_pages)} page(s) hold large images that may show tables "
                   f"(pages {shown}{'...' if len(image_pages) > 10 else ''}): look at them with paper_page_image")
    return out


def save(extraction: dict, path: Path) -> None:
    """Written whole or not at all: a reader never sees half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(extraction))
    os.replace(partial, path)


def load(path: Path) -> dict:
    return json.loads(path.read_text())

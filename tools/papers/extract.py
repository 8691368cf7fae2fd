"""Everything the lab reads from a PDF, extracted once and kept as JSON next to it.

Text per page, the section outline (the PDF's own outline, else headings found by font
size and numbering), code links ranked (first pages and footnotes first), table captions
and stitched tables. Bad PDFs give a clear error (corrupt, encrypted, no pages) or an
explicit warning in the result (repaired, no text layer, page cap reached).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

from ..errors import LabError
from ..registry import Progress, no_progress
from . import tables

EXTRACTION_VERSION = 1
MAX_PAGES = 500
NO_TEXT_WARNING = "no text layer, OCR not attempted"
URL = re.compile(r"https?://[^\s<>\"'()\[\]{}]+", re.IGNORECASE)
URL_TAIL = re.compile(r"^[\w%~+#?=&-]*[/_-][\w./%~+#?=&-]*$")
HEADING = re.compile(r"^((\d+(\.\d+){0,2})\.?|[IVX]+\.|[A-H]\.?)\s+[A-Z][^.]{1,80}$|"
                     r"^(Abstract|References|Acknowledg(e)?ments?|Conclusions?|Appendix)$", re.IGNORECASE)
FOOTNOTE_ZONE = 0.85  # below this fraction of the page height a link counts as a footnote


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


def link_kind(url: str) -> str | None:
    """Which kind of code or project link ``url`` is, or None for other links."""
    parts = urlparse(url)
    host = (parts.hostname or "").lower()
    if host in ("github.com", "www.github.com", "gitlab.com", "www.gitlab.com", "huggingface.co", "hf.co") \
            and not parts.path.strip("/"):
        return None  # the site itself, not a repository or model
    if host in ("github.com", "www.github.com"):
        return "github"
    if host in ("gitlab.com", "www.gitlab.com"):
        return "gitlab"
    if host in ("huggingface.co", "hf.co"):
        return "huggingface"
    if host.endswith((".github.io", ".gitlab.io")) or host == "sites.google.com":
        return "project"
    return None


def _clean_url(url: str) -> str:
    url = url.rstrip(".,;:")
    return url[:-4] if url.endswith(".git") else url


def _links(page, index: int, words) -> list[dict]:
    height = page.rect.height
    found = []
    for link in page.get_links():
        uri = link.get("uri")
        if uri:
            found.append((uri, link["from"].y1, "annotation"))
    for i, (x0, y0, x1, y1, word, *_) in enumerate(words):
        for url in URL.findall(word):
            # a URL broken at a line end ("https://hf.co/example-" + "lab/model") continues
            # with the next word when that looks like the rest of a path
            if url.endswith(("-", "/", "_", ".")) and i + 1 < len(words) and URL_TAIL.match(words[i + 1][4]):
                url += words[i + 1][4]
            found.append((url, y1, "text"))
    out = []
    for url, bottom, origin in found:
        url = _clean_url(url)
        kind = link_kind(url)
        if kind:
            out.append({"url": url, "kind": kind, "page": index + 1, "footnote": bottom > FOOTNOTE_ZONE * height,
                        "origin": origin})
    return out


def rank_links(links: list[dict]) -> list[dict]:
    """One entry per URL, best first: first two pages and footnotes, then by page;
    code hosts before project pages."""
    kind_order = {"github": 0, "gitlab": 0, "huggingface": 1, "project": 2}
    best: dict[str, dict] = {}
    for link in links:
        key = link["url"].rstrip("/").lower()
        if key not in best or (link["footnote"], -link["page"]) > (best[key]["footnote"], -best[key]["page"]):
            best[key] = link
    ranked = sorted(best.values(), key=lambda l: (not (l["page"] <= 2 or l["footnote"]), l["page"],
                                                  not l["footnote"], kind_order[l["kind"]]))
    return [dict(link, rank=i + 1) for i, link in enumerate(ranked)]


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


def title_from_layout(page) -> str:
    """The largest text in the top half of the first page: the title of most papers."""
    lines = []
    import pymupdf

    for block in page.get_text("dict", flags=plain(pymupdf.TEXTFLAGS_DICT))["blocks"]:
        for line in block.get("lines", []):
            spans = [s for s in line["spans"] if s["text"].strip()]
            if spans and line["bbox"][1] < page.rect.height / 2:
                lines.append((round(max(s["size"] for s in spans), 1), " ".join(s["text"].strip() for s in spans)))
    if not lines:
        return ""
    biggest = max(size for size, _ in lines)
    return " ".join(text for size, text in lines if size == biggest)[:500]


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
    texts, links, captions, parts = [], [], [], []
    words_by_page, heights = {}, {}
    image_only = 0
    unreadable = []
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
        words_by_page[index] = words
        heights[index] = page.rect.height
        if not text.strip() and page.get_images():
            image_only += 1
        links += _links(page, index, words)
        captions += [{"caption": c, "page": index + 1} for c in tables.caption_lines(text)]
        try:
            if cand := tables.candidate(page, index, text, words):
                parts += tables.page_parts(page, cand, words, text)
        except Exception as exc:  # one odd page must not cost the whole paper
            warnings.append(f"tables on page {index + 1} could not be extracted ({type(exc).__name__})")
        if index % 10 == 9:
            progress(index + 1, pages, "extracting pages")
    if unreadable:
        warnings.append(f"{len(unreadable)} page(s) could not be read (damaged): {unreadable[:20]}")
    chars = sum(len(t.strip()) for t in texts)
    if chars < 20 * pages:
        warnings.append(f"{NO_TEXT_WARNING}: the PDF looks scanned (images without text)"
                        if image_only else f"{NO_TEXT_WARNING}: the PDF has almost no text")
    elif image_only:
        warnings.append(f"{image_only} page(s) are images without text ({NO_TEXT_WARNING})")
    toc = doc.get_toc(simple=True)
    if toc:
        outline = [{"level": lvl, "title": title.strip(), "page": page} for lvl, title, page in toc]
        outline_source = "pdf"
    else:
        outline = headings(doc, pages) if chars else []
        outline_source = "headings" if outline else "none"
    stitched = tables.stitch(parts, heights, words_by_page)
    meta = doc.metadata or {}
    return {
        "version": EXTRACTION_VERSION,
        "page_count": total,
        "pages_processed": pages,
        "metadata": {"title": (meta.get("title") or "").strip() or title_from_layout(doc[0]),
                     "author": (meta.get("author") or "").strip()},
        "texts": texts,
        "outline": outline,
        "outline_source": outline_source,
        "links": rank_links(links),
        "table_captions": captions,
        "tables": [t.as_dict(i + 1) for i, t in enumerate(stitched)],
        "warnings": warnings,
    }


def save(extraction: dict, path: Path) -> None:
    path.write_text(json.dumps(extraction))


def load(path: Path) -> dict:
    return json.loads(path.read_text())

"""Which paper a PDF is: its arXiv id or DOI, and a title and abstract read from page 1.

The arXiv side stamp ("arXiv:1710.09829v2 [cs.CV] 7 Nov 2017") is set vertically in the
left margin; it names the paper, and it is never its title. When a PDF carries an arXiv
id, the lab takes the title, authors and abstract from arXiv; otherwise the title is the
largest horizontal text near the top of page 1, outside the margins, and the abstract
runs from its heading to the first section heading ("1 Introduction", split over lines
or set in small caps, or "Keywords"/"Index Terms").
"""

from __future__ import annotations

import re

NEW_ID = r"\d{4}\.\d{4,5}"
OLD_ID = r"[a-z][a-z.-]*(?:\.[A-Z]{2})?/\d{7}"
ARXIV_MENTION = re.compile(rf"\barXiv\s*:\s*({NEW_ID}|{OLD_ID})(v\d+)?", re.IGNORECASE)
DOI = re.compile(r"\b(?:doi\s*:\s*|https?://(?:dx\.)?doi\.org/)(10\.\d{4,9}/[^\s\"<>]+[^\s\"<>.,;)])", re.IGNORECASE)
TITLE_ZONE = 0.45  # the title sits in this top share of page 1
MARGIN_ZONE = 0.1  # text wholly within this share of the width from either edge is margin matter
ABSTRACT_START = re.compile(r"(?:^|\n)[ \t]*a[ \t]*b[ \t]*s[ \t]*t[ \t]*r[ \t]*a[ \t]*c[ \t]*t\b[ \t]*[:.—–-]?",
                            re.IGNORECASE)
ABSTRACT_END = re.compile(
    r"\n[ \t]*(?:(?:1|I)[ \t]*\.?[ \t]*\n?[ \t]*I[ \t]?NTRODUCTION\b|(?:1|I)[ \t]*\.?[ \t]*\n?[ \t]*Introduction\b"
    r"|Introduction[ \t]*\n|INTRODUCTION\b|Keywords?\b|Key[ \t]words\b|Index[ \t]Terms\b|CCS[ \t]Concepts\b"
    r"|1\.?[ \t]+[A-Z][A-Za-z]+(?:[ \t][A-Za-z]+){0,4}[ \t]*\n)", re.IGNORECASE)
MAX_ABSTRACT = 3000


def _stamp_lines(page_dict: dict) -> list[str]:
    """Text set vertically (the arXiv stamp is rotated by 90 degrees)."""
    out = []
    for block in page_dict["blocks"]:
        for line in block.get("lines", []):
            if abs(line["dir"][1]) > 0.5:
                out.append("".join(s["text"] for s in line["spans"]))
    return out


def arxiv_id(metadata: dict, page_dict: dict, first_text: str) -> str | None:
    """The arXiv id the PDF shows: its side stamp, its metadata, or a line of page 1 that
    starts with it (a header or footer). Ids cited inside the text are not its own."""
    places = _stamp_lines(page_dict) + [metadata.get(k) or "" for k in ("title", "subject", "keywords")]
    places += [line for line in first_text.splitlines() if line.strip().lower().startswith("arxiv:")]
    for text in places:
        if found := ARXIV_MENTION.search(text):
            return found.group(1) + (found.group(2) or "")
    return None


def doi(metadata: dict, first_text: str) -> str | None:
    for text in (metadata.get("subject") or "", metadata.get("keywords") or "", first_text):
        if found := DOI.search(text):
            return found.group(1)
    return None


def _line_text(spans) -> str:
    """A line's spans joined, with a space where they stand apart: small caps set the
    first letter of each word as its own, larger span ("A" "N I" "MAGE")."""
    text = spans[0]["text"]
    for before, span in zip(spans, spans[1:]):
        apart = span["bbox"][0] - before["bbox"][2] > 0.15 * min(before["size"], span["size"])
        text += (" " if apart and not text.endswith(" ") and not span["text"].startswith(" ") else "") + span["text"]
    return " ".join(text.split())


def title_from_layout(page_dict: dict, width: float, height: float) -> str:
    """The largest horizontal text in the top of page 1, not in a margin, with the lines
    next to it that are set as large (a title over two or three lines)."""
    lines = []
    for block in page_dict["blocks"]:
        for line in block.get("lines", []):
            spans = [s for s in line["spans"] if s["text"].strip()]
            x0, y0, x1, _ = line["bbox"]
            if not spans or abs(line["dir"][1]) > 0.1 or y0 > TITLE_ZONE * height:
                continue
            if x1 < MARGIN_ZONE * width or x0 > (1 - MARGIN_ZONE) * width:
                continue
            text = _line_text(spans)
            if sum(ch.isalpha() for ch in text) < 2 or ARXIV_MENTION.search(text):
                continue
            lines.append((max(s["size"] for s in spans), line["bbox"], text))
    if not lines:
        return ""
    biggest = max(size for size, _, _ in lines)
    start = next(i for i, line in enumerate(lines) if line[0] >= biggest - 0.5)
    picked = [lines[start]]
    for size, bbox, text in lines[start + 1:]:
        if size < biggest - 1.5 or bbox[1] - picked[-1][1][3] > 1.2 * biggest:
            break
        picked.append((size, bbox, text))
    return " ".join(text for _, _, text in picked)[:500]


def plausible_metadata_title(title: str) -> bool:
    """A PDF's own title field is often a file name, a tool's name or the arXiv stamp."""
    t = title.strip()
    return (len(t.split()) >= 2 and not ARXIV_MENTION.search(t)
            and not re.search(r"\.(dvi|tex|docx?|pdf|ps)$|^microsoft word|^untitled", t, re.IGNORECASE))


def abstract(first_text: str) -> str:
    """The abstract of page 1's text, or "" when it has no abstract heading."""
    start = ABSTRACT_START.search(first_text)
    if not start:
        return ""
    rest = first_text[start.end():]
    end = ABSTRACT_END.search(rest)
    body = rest[:end.start()] if end else rest[:MAX_ABSTRACT]
    text = " ".join(body.split())
    text = re.sub(r"(\w)- (\w)", r"\1\2", text)  # words hyphenated at a line end
    return text[:MAX_ABSTRACT].lstrip(":.—– ")

"""Code links of a paper, its own first.

A link is the paper's own code when the text right before it says so ("our code is
available at", "we release"), when it is a footnote on page 1, or when the repository's
owner is named on page 1 (an author, the authors' organisation). Links that come after
"official implementation of [12]" or "we build on" are someone else's. A paper that
names no code of its own gets ``own: false`` on every link, so a cited repository is
never mistaken for the paper's. A URL broken at a line end is joined to the rest of it
on the next line, and a text URL that the PDF also carries whole as a link annotation
takes the annotation's address.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

URL = re.compile(r"https?://[^\s<>\"'()\[\]{}]+", re.IGNORECASE)
URL_TAIL = re.compile(r"^[\w%~+#?=&.-]*[/_.-][\w./%~+#?=&-]*$|^[\w%~+#?=&-]+$")
FOOTNOTE_ZONE = 0.85  # below this fraction of the page height a link counts as a footnote
OWN_CUE = re.compile(
    r"\b(?:our|the)\s+(?:source\s+)?(?:code|implementation|models?|software|library|toolkit)\b"
    r"|\bcode\s+(?:and\s+\w+\s+)?(?:is|are|will\s+be|has\s+been|can\s+be)\s+(?:publicly\s+|made\s+|freely\s+)?"
    r"(?:available|released|found|accessed|public)"
    r"|\b(?:we|I)\s+(?:release|open[- ]?source|publish|provide|make)\b|\bproject\s+page\b|\bavailable\s+(?:at|on|from)\b"
    r"|\bcode\s*:", re.IGNORECASE)
CITED_CUE = re.compile(r"\b(?:official\s+implementation\s+of|implementation\s+(?:of|from)\s+\[|we\s+(?:use|build\s+on|adopt)"
                       r"|based\s+on|borrowed|third[- ]party|baselines?\b)", re.IGNORECASE)
CUE_WORDS = 25  # words before a URL read for a cue, back to the start of its sentence
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
CODE_HOSTS = {"github.com": "github", "www.github.com": "github", "gitlab.com": "gitlab", "www.gitlab.com": "gitlab",
              "huggingface.co": "huggingface", "hf.co": "huggingface"}


def link_kind(url: str) -> str | None:
    """Which kind of code or project link ``url`` is, or None for other links."""
    parts = urlparse(url)
    host = (parts.hostname or "").lower()
    if host in CODE_HOSTS:
        return CODE_HOSTS[host] if parts.path.strip("/") else None  # the site itself is no repository
    if host.endswith((".github.io", ".gitlab.io")) or host == "sites.google.com":
        return "project"
    return None


def _clean(url: str) -> str:
    url = url.rstrip(".,;:")
    return url[:-4] if url.endswith(".git") else url


def _incomplete(url: str) -> bool:
    """Cut at a line end: ends in a separator, or a code host address without owner/repo.
    A final full stop ends a sentence, not an address."""
    if url.endswith(("-", "/", "_")):
        return True
    if url.endswith((".", ",", ";", ":")):
        return False
    parts = urlparse(url)
    return (parts.hostname or "").lower() in CODE_HOSTS and len([p for p in parts.path.split("/") if p]) < 2


def _owner(url: str) -> str:
    parts = [p for p in urlparse(url).path.split("/") if p]
    return parts[0].lower() if parts else ""


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def page_links(page, index: int, words, front_matter: str) -> list[dict]:
    """The code links of one page, each with why it is, or is not, the paper's own.
    ``front_matter`` is the top of page 1 (title, authors, affiliations)."""
    height = page.rect.height
    annotated = [(link["uri"], link["from"].y1) for link in page.get_links() if link.get("uri")]
    found = [(uri, bottom, "annotation", "") for uri, bottom in annotated]
    for i, (x0, y0, x1, y1, word, block, line, _) in enumerate(words):
        for url in URL.findall(word):
            following = words[i + 1] if i + 1 < len(words) else None
            if following and word.endswith(url) and (following[5], following[6]) != (block, line) \
                    and _incomplete(url) and URL_TAIL.match(following[4]):
                url += following[4]
            whole = [uri for uri, _ in annotated if uri.startswith(url) and len(uri) > len(url)]
            before = SENTENCE_END.split(" ".join(w[4] for w in words[max(0, i - CUE_WORDS):i]))[-1]
            found.append((whole[0] if whole else url, y1, "text", before))
    squashed_front = _squash(URL.sub(" ", front_matter))  # names on page 1, not the addresses themselves
    out = []
    for url, bottom, origin, before in found:
        url = _clean(url)
        kind = link_kind(url)
        if not kind:
            continue
        footnote = bottom > FOOTNOTE_ZONE * height
        reasons = []
        if OWN_CUE.search(before) and not CITED_CUE.search(before):
            reasons.append("said to be the paper's code")
        if index == 0 and footnote:
            reasons.append("footnote on page 1")
        owner = _owner(url)
        if kind != "project" and len(owner) >= 3 and _squash(owner) in squashed_front:
            reasons.append(f"owner {owner!r} is named on page 1")
        if kind == "project" and (urlparse(url).hostname or "").split(".")[0] in squashed_front:
            reasons.append("project page of a name on page 1")
        out.append({"url": url, "kind": kind, "page": index + 1, "footnote": footnote, "origin": origin,
                    "reasons": reasons})
    return out


def rank(links: list[dict]) -> list[dict]:
    """One entry per URL, the paper's own first (most reasons), then by page; code hosts
    before project pages."""
    kind_order = {"github": 0, "gitlab": 0, "huggingface": 1, "project": 2}
    best: dict[str, dict] = {}
    for link in links:
        key = link["url"].rstrip("/").lower()
        if key in best:
            merged = sorted(set(best[key]["reasons"]) | set(link["reasons"]))
            first = best[key] if best[key]["page"] <= link["page"] else link
            best[key] = first | {"reasons": merged, "footnote": best[key]["footnote"] or link["footnote"]}
        else:
            best[key] = link
    ranked = sorted(best.values(), key=lambda item: (-len(item["reasons"]), item["page"], not item["footnote"],
                                                  kind_order[item["kind"]]))
    return [dict(link, rank=i + 1, own=bool(link["reasons"]),
                 reason="; ".join(link["reasons"]) or "cited: nothing marks it as the paper's own code")
            for i, link in enumerate(ranked)]

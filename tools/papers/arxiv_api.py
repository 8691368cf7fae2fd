"""The arXiv API, politely: one request every 3 s across the whole process, with retries.

arXiv's terms ask for at most one API request every three seconds. The ``arxiv`` client
enforces a delay per client object only, so every request this process makes to arXiv
goes through one module-level gate (a lock and the time of the last request) instead.

Environment:
- ``SOTALAB_ARXIV_API_URL``: the API endpoint (default ``https://export.arxiv.org/api/query``),
  e.g. a mirror or a loopback stand-in.
- ``SOTALAB_ARXIV_INTERVAL_S``: seconds between requests (default 3; lower only for a
  local stand-in, never for arxiv.org).
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

from ..errors import LabError, NotFound

DEFAULT_API_URL = "https://export.arxiv.org/api/query"
DEFAULT_INTERVAL_S = 3.0
REQUEST_TIMEOUT_S = (10, 30)  # connect, read
RETRIES = 3
BACKOFF_INTERVALS = 1.0  # first retry waits one polite interval, then twice that, ...

WITHDRAWN = re.compile(r"\b(?:(?:paper|article|submission|manuscript|version) (?:has been|is|was) withdrawn"
                       r"|withdrawn by (?:the )?(?:authors?|arxiv|admin)|withdraw (?:this|the) (?:paper|article|submission))",
                       re.IGNORECASE)

_gate = threading.Lock()
_last_request = 0.0  # time.monotonic() of the last request sent to arXiv


def api_url() -> str:
    return os.environ.get("SOTALAB_ARXIV_API_URL", DEFAULT_API_URL).rstrip("?")


def interval_s() -> float:
    try:
        wanted = max(0.0, float(os.environ.get("SOTALAB_ARXIV_INTERVAL_S", DEFAULT_INTERVAL_S)))
    except ValueError:
        wanted = DEFAULT_INTERVAL_S
    if (urlparse(api_url()).hostname or "").endswith("arxiv.org"):
        return max(wanted, DEFAULT_INTERVAL_S)  # arXiv's terms: never faster against arXiv itself
    return wanted


def wait_turn() -> None:
    """Block until this process may send its next request to arXiv, and claim that slot."""
    global _last_request
    with _gate:
        delay = _last_request + interval_s() - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        _last_request = time.monotonic()


def _session():
    """A requests session whose every request waits its turn and has a timeout."""
    import requests

    class PoliteSession(requests.Session):
        def request(self, method, url, **kwargs):
            kwargs.setdefault("timeout", REQUEST_TIMEOUT_S)
            wait_turn()
            return super().request(method, url, **kwargs)

    return PoliteSession()


def _client():
    import arxiv

    # Retries are ours (with backoff); the gate does the spacing, so the client's own is off.
    client = arxiv.Client(page_size=100, delay_seconds=0.0, num_retries=0)
    client.query_url_format = api_url() + "?{}"
    client._session = _session()
    return client


@dataclass
class Entry:
    arxiv_id: str  # with version, as the API names it
    title: str
    authors: list[str]
    abstract: str
    comment: str | None
    published: str
    updated: str
    categories: list[str]
    primary_category: str
    pdf_url: str | None
    doi: str | None
    journal_ref: str | None

    @property
    def withdrawn(self) -> bool:
        """arXiv marks a withdrawal in the comment (and the replacement abstract)."""
        return bool(WITHDRAWN.search(f"{self.comment or ''} {self.abstract[:300]}"))


def _entry(result) -> Entry:
    return Entry(
        arxiv_id=result.get_short_id(), title=result.title.strip(),
        authors=[a.name for a in result.authors], abstract=" ".join(result.summary.split()),
        comment=result.comment, published=result.published.isoformat(), updated=result.updated.isoformat(),
        categories=list(result.categories), primary_category=result.primary_category,
        pdf_url=result.pdf_url, doi=result.doi, journal_ref=result.journal_ref,
    )


def _retryable(exc: Exception) -> bool:
    import arxiv
    import requests

    if isinstance(exc, arxiv.HTTPError):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, (requests.ConnectionError, requests.Timeout, arxiv.UnexpectedEmptyPageError))


def _run(search) -> list[Entry]:
    import arxiv

    client = _client()
    for attempt in range(RETRIES + 1):
        try:
            return [_entry(r) for r in client.results(search)]
        except Exception as exc:
            if not _retryable(exc):
                if isinstance(exc, arxiv.HTTPError):
                    raise LabError(f"the arXiv API answered HTTP {exc.status} for this query",
                                   hint="check the query syntax (e.g. ti:, au:, abs:, AND/OR)") from None
                raise
            if attempt == RETRIES:
                raise LabError(f"arXiv could not be reached after {RETRIES + 1} tries ({_describe(exc)})",
                               hint=f"check the network or try again later; API endpoint: {api_url()}") from None
            time.sleep(BACKOFF_INTERVALS * interval_s() * 2 ** attempt)
    raise AssertionError("unreachable")


def _describe(exc: Exception) -> str:
    import arxiv

    if isinstance(exc, arxiv.HTTPError):
        return f"HTTP {exc.status}"
    return type(exc).__name__


SORTS = {"relevance": "Relevance", "submitted": "SubmittedDate", "updated": "LastUpdatedDate"}


def search(query: str, max_results: int, sort: str) -> list[Entry]:
    import arxiv

    criterion = getattr(arxiv.SortCriterion, SORTS[sort])
    return _run(arxiv.Search(query=query, max_results=max_results, sort_by=criterion))


def lookup(arxiv_id: str) -> Entry:
    """The API's entry for one id; NotFound when arXiv has no such paper."""
    import arxiv

    entries = [e for e in _run(arxiv.Search(id_list=[arxiv_id], max_results=1)) if e.arxiv_id]
    # arXiv answers an unknown id with an empty feed or a single "Error" entry.
    entries = [e for e in entries if "api/errors" not in e.arxiv_id and e.title.lower() != "error"]
    if not entries:
        raise NotFound(f"arXiv has no paper with id {arxiv_id}",
                       hint="check the id (e.g. 2106.01234 or hep-th/9901001), or search with paper_search")
    return entries[0]

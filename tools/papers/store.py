"""The paper cache under ``<home>/papers/<key>/``: ``paper.pdf`` and ``extraction.json``.

A paper directory appears whole or not at all: the PDF is downloaded and extracted in a
``.partial-*`` directory that is renamed into place only when both files are complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from .. import ledger
from ..errors import LabError, NotFound
from ..home import Lab
from ..registry import Progress
from . import arxiv_api, extract, fetch

PDF_NAME = "paper.pdf"
EXTRACTION_NAME = "extraction.json"
STALE_PARTIAL_S = 3600
PARSED_CACHE_SIZE = 8  # papers whose parsed extraction stays in memory

_parsed: dict[tuple, dict] = {}  # (path, mtime, size) -> extraction, oldest first
_parsed_lock = threading.Lock()


def paper_dir(lab: Lab, key: str) -> Path:
    return lab.path("papers", key)


def is_complete(lab: Lab, key: str) -> bool:
    return (paper_dir(lab, key) / EXTRACTION_NAME).is_file()


def _sweep_partials(root: Path) -> None:
    """Remove work directories a crashed process left behind."""
    for stale in root.glob(".partial-*"):
        try:
            if time.time() - stale.stat().st_mtime > STALE_PARTIAL_S:
                shutil.rmtree(stale, ignore_errors=True)
        except FileNotFoundError:
            pass


def _get_pdf(source: fetch.Source, entry: arxiv_api.Entry | None, dest: Path) -> None:
    if source.kind == "file":
        size = Path(source.value).stat().st_size
        if size > fetch.MAX_PDF_BYTES:
            raise LabError(f"{source.value} is {size // 2**20} MiB, over the {fetch.MAX_PDF_BYTES // 2**20} MiB limit")
        with open(source.value, "rb") as f:
            fetch.check_pdf_head(f.read(2048), source.value)
        shutil.copyfile(source.value, dest)
    elif source.kind == "url":
        fetch.download(source.value, dest)
    else:
        if not entry.pdf_url:
            raise LabError(f"arXiv lists no PDF for {entry.arxiv_id}", hint="try another version of the paper")
        url = entry.pdf_url
        if url.startswith("http://") and urlparse(url).hostname in fetch.ARXIV_HOSTS:
            url = "https://" + url[len("http://"):]
        fetch.download(url, dest, polite=True)


def _check_withdrawn(entry: arxiv_api.Entry) -> None:
    if not entry.withdrawn:
        return
    base, _, version = entry.arxiv_id.rpartition("v")
    hint = "the paper has no earlier version" if not version.isdigit() or int(version) <= 1 else \
        f"fetch an earlier version, e.g. {base}v{int(version) - 1}"
    reason = (entry.comment or entry.abstract)[:200]
    raise LabError(f"arXiv paper {entry.arxiv_id} has been withdrawn ({reason})", hint=hint)


def materialise(lab: Lab, source: fetch.Source, progress: Progress) -> tuple[dict, arxiv_api.Entry | None]:
    """Download and extract ``source`` into the cache; return (extraction, arXiv entry)."""
    entry = None
    if source.kind == "arxiv":
        entry = arxiv_api.lookup(source.value)
        _check_withdrawn(entry)
    root = lab.path("papers")
    _sweep_partials(root)
    work = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    try:
        what = {"file": f"copying {source.value}", "url": f"downloading {source.value}",
                "arxiv": f"downloading arXiv:{source.value}"}[source.kind]
        progress(0, None, what)
        _get_pdf(source, entry, work / PDF_NAME)
        progress(0, None, "extracting text, outline, links and tables")
        extraction = extract.extract(work / PDF_NAME, progress)
        if entry is None and (shown := extraction["metadata"]["arxiv_id"]):
            entry = _identify(shown, extraction["warnings"])
        extract.save(extraction, work / EXTRACTION_NAME)
        final = paper_dir(lab, source.key)
        if final.exists() and not is_complete(lab, source.key):
            shutil.rmtree(final)  # an incomplete leftover from an older version or a crash
        try:
            os.rename(work, final)
        except OSError:
            if not is_complete(lab, source.key):
                raise
            shutil.rmtree(work)  # a concurrent fetch of the same paper finished first
            return load_extraction(lab, source.key), entry
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return extraction, entry


def _identify(arxiv_id: str, warnings: list[str]) -> arxiv_api.Entry | None:
    """arXiv's entry for the id a PDF shows, or None (with a warning) when arXiv cannot
    say: the title and abstract are then read from the PDF."""
    try:
        return arxiv_api.lookup(arxiv_id)
    except LabError as exc:
        warnings.append(f"the PDF shows arXiv:{arxiv_id}, but arXiv could not confirm it ({exc}); "
                        "title, authors and abstract are read from the PDF")
        return None


def record(lab: Lab, key: str, source_text: str, extraction: dict, entry: arxiv_api.Entry | None,
           campaign: int | None) -> dict:
    title, authors, abstract = guess_front_matter(extraction)
    row = {
        "id": key,
        "source": source_text,
        "arxiv_id": entry.arxiv_id if entry else extraction["metadata"].get("arxiv_id"),
        "title": entry.title if entry else title,
        "authors": ledger.dumps(entry.authors if entry else authors),
        "abstract": entry.abstract if entry else abstract,
        "pages": extraction["page_count"],
        "pdf_path": str(paper_dir(lab, key) / PDF_NAME),
        "extraction": ledger.dumps({
            "meta": {"published": entry.published, "updated": entry.updated, "categories": entry.categories,
                     "comment": entry.comment} if entry else {},
            "tables": len(extraction["tables"]), "outline_source": extraction["outline_source"],
            "warnings": extraction["warnings"],
        }),
        "created_at": ledger.now(),
    }
    if campaign is not None:
        row["campaign_id"] = campaign
    lab.db["papers"].upsert(row, pk="id")
    return load_row(lab, key)


def guess_front_matter(extraction: dict) -> tuple[str, list[str], str]:
    """Title, authors and abstract of a PDF that did not come with arXiv metadata."""
    meta = extraction["metadata"]
    authors = [a.strip() for a in meta["author"].split(",") if a.strip()]
    return meta["title"][:500], authors, meta["abstract"]


def load_extraction(lab: Lab, key: str) -> dict:
    """The cached extraction, read from disk once per process and file version (parsing
    a long paper's JSON costs tens of milliseconds; every paper tool reads it). One made
    by an older version of the extractor is made again from the cached PDF, so every
    paper has the fields the tools read. Callers must not change what they get."""
    path = paper_dir(lab, key) / EXTRACTION_NAME
    stat = path.stat()
    stamp = (str(path), stat.st_mtime_ns, stat.st_size)
    if (found := _parsed.get(stamp)) is not None:
        return found
    extraction = extract.load(path)
    if extraction.get("version") != extract.EXTRACTION_VERSION:
        extraction = extract.extract(paper_dir(lab, key) / PDF_NAME)
        extract.save(extraction, path)
        return load_extraction(lab, key)
    with _parsed_lock:
        if len(_parsed) >= PARSED_CACHE_SIZE:
            _parsed.pop(next(iter(_parsed)))
        _parsed[stamp] = extraction
    return extraction


def load_row(lab: Lab, key: str) -> dict:
    return next(lab.db.query("SELECT * FROM papers WHERE id = ?", [key]))


def resolve(lab: Lab, paper: str) -> tuple[dict, dict]:
    """A paper by its id (or its arXiv id or source, as given to paper_fetch): (row, extraction)."""
    rows = list(lab.db.query("SELECT * FROM papers WHERE id = ? OR arxiv_id = ? OR source = ? LIMIT 1",
                             [paper, paper, paper]))
    if not rows:
        raise NotFound(f"no fetched paper {paper!r}", hint="fetch it first with paper_fetch and use the id it returns")
    row = rows[0]
    if not is_complete(lab, row["id"]):
        raise LabError(f"the cached files of paper {row['id']} are missing",
                       hint=f"fetch it again with paper_fetch(source={row['source']!r})")
    return row, load_extraction(lab, row["id"])

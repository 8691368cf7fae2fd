"""Where a paper comes from, and getting its PDF into the lab's cache safely.

A source is an arXiv id (``2106.01234``, ``2106.01234v2``, ``hep-th/9901001``), an arxiv.org
abs/pdf URL, an https URL of a PDF, or a local file. Local files must lie under an allowed
root: the lab home, the current working directory (unless it is the filesystem root), or
a directory listed in ``SOTALAB_PAPER_ROOTS`` (separated by ``os.pathsep``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..errors import InvalidInput, LabError

MAX_PDF_BYTES = 100 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 120
CHUNK = 1 << 16
HEAD_BYTES = 1024  # check_pdf_head looks for %PDF- this far in

NEW_ID = r"\d{4}\.\d{4,5}(?:v\d+)?"
OLD_ID = r"[a-z][a-z.-]*(?:\.[A-Z]{2})?/\d{7}(?:v\d+)?"
ARXIV_ID = re.compile(rf"^(?:arxiv:)?({NEW_ID}|{OLD_ID})$", re.IGNORECASE)
ARXIV_URL = re.compile(rf"^/(?:abs|pdf)/({NEW_ID}|{OLD_ID})(?:\.pdf)?/?$", re.IGNORECASE)
ARXIV_HOSTS = {"arxiv.org", "www.arxiv.org", "export.arxiv.org"}


@dataclass(frozen=True)
class Source:
    kind: str  # "arxiv" | "url" | "file"
    value: str  # arXiv id, URL, or resolved path

    @property
    def key(self) -> str:
        """Cache key: fetching the same source again finds the same directory."""
        if self.kind == "arxiv":
            return "arxiv-" + self.value.replace("/", "_")
        if self.kind == "url":
            return "url-" + hashlib.sha256(self.value.encode()).hexdigest()[:16]
        return "file-" + _file_digest(Path(self.value))


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK * 16), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def allowed_roots(lab_home: Path) -> list[Path]:
    roots = [lab_home]
    cwd = Path.cwd().resolve()
    if cwd != Path(cwd.anchor):  # some hosts start servers in /: that would allow every file
        roots.append(cwd)
    roots += [Path(p) for p in os.environ.get("SOTALAB_PAPER_ROOTS", "").split(os.pathsep) if p.strip()]
    return [r.expanduser().resolve() for r in roots]


def parse_source(source: str, lab_home: Path) -> Source:
    text = source.strip()
    if not text:
        raise InvalidInput("source is empty", hint="give an arXiv id, an arxiv.org URL, an https PDF URL or a file path")
    if match := ARXIV_ID.match(text):
        return Source("arxiv", match.group(1))
    if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
        return _parse_url(text)
    return Source("file", str(_local_file(text, lab_home)))


def _parse_url(url: str) -> Source:
    parts = urlparse(url)
    host = (parts.hostname or "").lower()
    if host in ARXIV_HOSTS:
        if match := ARXIV_URL.match(parts.path):
            return Source("arxiv", match.group(1))
        raise InvalidInput(f"{url} is an arxiv.org URL but not an abs/ or pdf/ page of a paper",
                           hint="use https://arxiv.org/abs/<id> or just the id")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)):
        return Source("url", url)
    raise InvalidInput(f"{url}: only https URLs are fetched (http only from this machine's loopback)",
                       hint="use the https address of the PDF")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_file(text: str, lab_home: Path) -> Path:
    if text.startswith("-"):
        raise InvalidInput(f"path {text!r} may not start with '-'")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    resolved = path.resolve()  # follows symlinks, so a link cannot escape the roots
    roots = allowed_roots(lab_home)
    if not any(resolved.is_relative_to(root) for root in roots):
        raise InvalidInput(f"{text} is outside the directories papers may be read from",
                           hint="copy it under the lab home or the working directory, or add its directory "
                                "to SOTALAB_PAPER_ROOTS")
    if not resolved.exists():
        raise InvalidInput(f"{text} does not exist")
    if not resolved.is_file():
        raise InvalidInput(f"{text} is not a file", hint="give the path of a PDF file")
    return resolved


def check_pdf_head(head: bytes, what: str) -> None:
    """Refuse anything that does not start like a PDF, with a message that says what it is."""
    if b"%PDF-" in head[:1024]:
        return
    lowered = head[:2048].lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered[:512]:
        raise LabError(f"{what} is an HTML page, not a PDF",
                       hint="it may be an error or login page; give the direct link to the PDF")
    raise LabError(f"{what} is not a PDF (it does not start with %PDF-)", hint="give the PDF itself")


def download(url: str, dest: Path, *, polite: bool = False, max_bytes: int = MAX_PDF_BYTES,
              timeout_s: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Stream ``url`` into ``dest`` with size and time limits and a PDF magic check.

    ``polite`` sends the request through the arXiv rate gate. On any failure ``dest``
    is removed: the caller never sees half a file.
    """
    import requests
    import urllib3

    from . import arxiv_api

    if polite:
        arxiv_api.wait_turn()
    started = time.monotonic()
    try:
        with requests.get(url, stream=True, timeout=(10, 30), allow_redirects=True,
                          headers={"user-agent": "sotalab (paper fetch)"}) as resp:
            final = urlparse(resp.url)
            if final.scheme != "https" and not is_loopback(final.hostname or ""):
                raise LabError(f"{url} redirected to {resp.url}, which is not https", hint="give the https URL of the PDF")
            if resp.status_code != 200:
                raise LabError(f"downloading {url} failed: HTTP {resp.status_code}",
                               hint="check the URL; for arXiv papers pass the id instead")
            declared = int(resp.headers.get("content-length") or 0)
            if declared > max_bytes:
                raise LabError(f"{url} is {declared // 2**20} MiB, over the {max_bytes // 2**20} MiB limit")
            size, head = 0, b""
            with open(dest, "wb") as out:
                # read1: whatever has arrived, so the deadline is checked even when a server
                # trickles bytes (iter_content would wait for a whole chunk, for ever).
                while chunk := resp.raw.read1(CHUNK, decode_content=True):
                    if len(head) < HEAD_BYTES:  # reads can be tiny: check a whole head once
                        head += chunk[:HEAD_BYTES - len(head)]
                        if len(head) == HEAD_BYTES:
                            check_pdf_head(head, url)
                    size += len(chunk)
                    if size > max_bytes:
                        raise LabError(f"{url} is over the {max_bytes // 2**20} MiB limit")
                    if time.monotonic() - started > timeout_s:
                        raise LabError(f"downloading {url} took over {timeout_s:.0f} s", hint="try again later")
                    out.write(chunk)
            if size == 0:
                raise LabError(f"{url} returned an empty body, not a PDF")
            if len(head) < HEAD_BYTES:
                check_pdf_head(head, url)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        dest.unlink(missing_ok=True)
        raise LabError(f"downloading {url} failed: {type(exc).__name__}",
                       hint="check the URL and the network") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise

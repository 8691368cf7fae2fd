"""Papers, offline: a loopback server speaks arXiv's Atom API and serves PDFs made here.

The arxiv client talks real HTTP to the stand-in (pointed at it by SOTALAB_ARXIV_API_URL);
the PDFs are real, generated with PyMuPDF, and each tool is checked against what was put in.
"""

from __future__ import annotations

import html
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from papers_pdfgen import render, sample_paper

SAMPLE = sample_paper()
TABLES = [t for s in SAMPLE.sections for t in s.tables]
LONG_TABLE = SAMPLE.sections[2].tables[1]


class ArxivStandIn(ThreadingHTTPServer):
    """arXiv's query API (search_query / id_list, opensearch totals) and its PDFs."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.papers: dict[str, dict] = {}  # base id -> entry fields, incl. "versions" and "pdf"
        self.files: dict[str, tuple[int, str, bytes]] = {}  # path -> (status, content type, body)
        self.fail_next = 0  # answer this many API requests with 503 first
        self.api_requests: list[tuple[float, str]] = []  # (monotonic time, query string)
        self.pdf_requests = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, arxiv_id: str, title: str, pdf: bytes | None, versions: int = 1, abstract: str = "", comment: str = "",
            authors: tuple[str, ...] = ("Ada Lovelace", "Alan Turing")):
        self.papers[arxiv_id] = {"title": title, "pdf": pdf, "versions": versions, "abstract": abstract or title,
                                 "comment": comment, "authors": authors}

    def entry(self, arxiv_id: str) -> str:
        p = self.papers[arxiv_id]
        vid = f"{arxiv_id}v{p['versions']}"
        comment = f"<arxiv:comment>{html.escape(p['comment'])}</arxiv:comment>" if p["comment"] else ""
        return f"""<entry>
  <id>http://arxiv.org/abs/{vid}</id>
  <updated>2021-06-0{p['versions']}T10:00:00Z</updated>
  <published>2021-06-01T10:00:00Z</published>
  <title>{html.escape(p['title'])}</title>
  <summary>  {html.escape(p['abstract'])}
  </summary>
  {"".join(f"<author><name>{html.escape(a)}</name></author>" for a in p["authors"])}
  {comment}
  <link href="http://arxiv.org/abs/{vid}" rel="alternate" type="text/html"/>
  <link title="pdf" href="{self.base}/pdf/{vid}" rel="related" type="application/pdf"/>
  <arxiv:primary_category xmlns:arxiv="http://arxiv.org/schemas/atom" term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
  <category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/><category term="stat.ML" scheme="http://arxiv.org/schemas/atom"/>
</entry>"""

    def feed(self, ids: list[str], start: int, total: int, per_page: int) -> bytes:
        entries = "\n".join(self.entry(i) for i in ids)
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom">
  <id>http://arxiv.org/api/stand-in</id><title>arXiv Query</title><updated>2021-06-01T00:00:00Z</updated>
  <opensearch:totalResults>{total}</opensearch:totalResults>
  <opensearch:startIndex>{start}</opensearch:startIndex>
  <opensearch:itemsPerPage>{per_page}</opensearch:itemsPerPage>
{entries}
</feed>""".encode()


class Handler(BaseHTTPRequestHandler):
    server: ArxivStandIn

    def log_message(self, *args):
        pass

    def send(self, status: int, body: bytes, content_type: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/api/query":
            self.server.api_requests.append((time.monotonic(), url.query))
            if self.server.fail_next:
                self.server.fail_next -= 1
                return self.send(503, b"busy", "text/plain")
            return self.query(parse_qs(url.query))
        if url.path.startswith("/pdf/"):
            self.server.pdf_requests += 1
            base = url.path[len("/pdf/"):].rsplit("v", 1)[0]
            paper = self.server.papers.get(base)
            if not paper or paper["pdf"] is None:
                return self.send(404, b"<html><body>Not found</body></html>", "text/html")
            return self.send(200, paper["pdf"], "application/pdf")
        if url.path in self.server.files:
            status, content_type, body = self.server.files[url.path]
            return self.send(status, body, content_type)
        self.send(404, b"<html><body>404 Not Found</body></html>", "text/html")

    def query(self, params):
        start = int(params.get("start", ["0"])[0])
        per_page = int(params.get("max_results", ["10"])[0])
        id_list = [i for i in params.get("id_list", [""])[0].split(",") if i]
        if id_list:
            ids = [i.rsplit("v", 1)[0] if "v" in i.split("/")[-1] else i for i in id_list]
            found = [i for i in ids if i in self.server.papers]
        else:
            words = [w.split(":")[-1].lower() for w in params.get("search_query", [""])[0].split()
                     if w not in ("AND", "OR")]
            found = [i for i, p in self.server.papers.items()
                     if all(w in (p["title"] + " " + p["abstract"]).lower() for w in words)]
        page = found[start:start + per_page]
        self.send(200, self.server.feed(page, start, len(found), per_page), "application/atom+xml")


@pytest.fixture(scope="module")
def paper_pdf() -> bytes:
    return render(SAMPLE)


_EXTRACTED: dict[str, dict] = {}


@pytest.fixture(autouse=True)
def extract_each_pdf_once(monkeypatch):
    """The same PDF bytes are extracted once per test session (the layout analysis costs
    about half a second a page); every test still gets the real extraction of its PDF."""
    import copy
    import hashlib

    from sotalab.tools.papers import extract

    real = extract.extract

    def once(pdf, progress=extract.no_progress, max_pages=extract.MAX_PAGES):
        key = f"{hashlib.sha256(pdf.read_bytes()).hexdigest()}-{max_pages}"
        if key not in _EXTRACTED:
            _EXTRACTED[key] = real(pdf, progress, max_pages)
        return copy.deepcopy(_EXTRACTED[key])

    monkeypatch.setattr(extract, "extract", once)


@pytest.fixture
def arxiv(monkeypatch, paper_pdf):
    server = ArxivStandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SOTALAB_ARXIV_API_URL", server.base + "/api/query")
    monkeypatch.setenv("SOTALAB_ARXIV_INTERVAL_S", "0.2")
    server.add("2106.01234", "Sharp Nets: Sharpness-Aware Training Revisited", paper_pdf,
               abstract="We revisit sharpness-aware minimisation.")
    server.add("hep-th/9901001", "Strings on the Lattice", paper_pdf)
    server.add("2203.00001", "Retracted Result", None, versions=2,
               comment="This paper has been withdrawn by the authors due to an error in Table 2")
    server.add("2205.00003", "Listed but its PDF is gone", None)
    server.add("2204.00002", "Dropout in clinical trials", paper_pdf,
               abstract="Patients withdrawn from the study were excluded from the analysis.")
    for n in range(12):
        server.add(f"2301.{n:05d}", f"Sharpness study number {n}", paper_pdf)
    yield server
    server.shutdown()
    server.server_close()


def papers_dir_entries(lab):
    return sorted(p.name for p in lab.path("papers").iterdir())


# ---------------------------------------------------------------- search and the API


def test_search_returns_entries_with_metadata(arxiv, call):
    result = call("paper_search", query="all:sharpness", max_results=5, sort="submitted")
    assert len(result["results"]) == 5
    hit = result["results"][0]
    assert hit["arxiv_id"] == "2106.01234v1"
    assert hit["title"] == "Sharp Nets: Sharpness-Aware Training Revisited"
    assert hit["authors"] == ["Ada Lovelace", "Alan Turing"]
    assert hit["categories"] == ["cs.LG", "stat.ML"]
    assert hit["pdf_url"].endswith("/pdf/2106.01234v1")
    assert hit["published"].startswith("2021-06-01")
    assert hit["withdrawn"] is False
    assert "sortBy=submittedDate" in arxiv.api_requests[-1][1]


def test_fifty_hits_with_long_abstracts_fit_one_result(arxiv, call):
    for n in range(50):
        arxiv.add(f"2305.{n:05d}", f"Verbose study {n}", None, abstract=f"verbose study {n} " + "words " * 320,
                  authors=tuple(f"Author Number {i}" for i in range(40)))
    hits = call("paper_search", query="verbose", max_results=50)["results"]
    assert len(hits) == 50 and all(len(h["authors"]) == 25 for h in hits)
    assert hits[0]["abstract"].startswith("verbose study 0 words") and hits[0]["abstract"].endswith("…")


def test_search_flags_withdrawn_papers_only(arxiv, call):
    withdrawn = call("paper_search", query="retracted")["results"]
    assert [(h["arxiv_id"], h["withdrawn"]) for h in withdrawn] == [("2203.00001v2", True)]
    trials = call("paper_search", query="clinical")["results"]
    assert [(h["arxiv_id"], h["withdrawn"]) for h in trials] == [("2204.00002v1", False)]


def test_search_retries_after_503(arxiv, call):
    arxiv.fail_next = 1
    result = call("paper_search", query="lattice")
    assert [h["title"] for h in result["results"]] == ["Strings on the Lattice"]
    assert len(arxiv.api_requests) == 2


def test_unreachable_arxiv_is_a_clear_error(monkeypatch, call_error):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SOTALAB_ARXIV_API_URL", f"http://127.0.0.1:{port}/api/query")
    monkeypatch.setenv("SOTALAB_ARXIV_INTERVAL_S", "0.01")
    message = call_error("paper_search", query="anything")
    assert "arXiv could not be reached after 4 tries" in message


def test_requests_are_spaced_by_the_interval_across_threads(arxiv, lab, monkeypatch):
    from sotalab.tools.invoke import invoke

    # Times are taken where the requests arrive, so a loaded machine's scheduling can shift
    # one arrival by tens of milliseconds: an interval of 0.5 s and a 0.1 s allowance.
    monkeypatch.setenv("SOTALAB_ARXIV_INTERVAL_S", "0.5")
    threads = [threading.Thread(target=invoke, args=(lab, "paper_search", {"query": "lattice"})) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times = sorted(t for t, _ in arxiv.api_requests)
    assert len(times) == 4
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.4


def test_default_spacing_is_three_seconds(arxiv, call, monkeypatch):
    monkeypatch.delenv("SOTALAB_ARXIV_INTERVAL_S")
    call("paper_search", query="lattice")
    call("paper_search", query="lattice")
    (first, _), (second, _) = arxiv.api_requests
    assert second - first >= 2.95


def test_arxiv_itself_is_never_asked_faster_than_every_three_seconds(monkeypatch):
    from sotalab.tools.papers import arxiv_api

    monkeypatch.setenv("SOTALAB_ARXIV_INTERVAL_S", "0.1")
    monkeypatch.delenv("SOTALAB_ARXIV_API_URL", raising=False)
    assert arxiv_api.interval_s() == 3.0
    monkeypatch.setenv("SOTALAB_ARXIV_API_URL", "http://127.0.0.1:8080/api/query")
    assert arxiv_api.interval_s() == 0.1


# ---------------------------------------------------------------- fetch


def test_fetch_by_id_extracts_what_was_put_in(arxiv, call):
    info = call("paper_fetch", source="2106.01234")
    assert info["id"] == "arxiv-2106.01234"
    assert info["arxiv_id"] == "2106.01234v1"
    assert info["title"] == "Sharp Nets: Sharpness-Aware Training Revisited"
    assert info["abstract"] == "We revisit sharpness-aware minimisation."
    assert [o["title"] for o in info["outline"]] == [s.title for s in SAMPLE.sections]
    assert info["outline_source"] == "pdf"
    assert info["code_links"][0] == {"url": SAMPLE.code_url, "kind": "github", "page": 1, "footnote": True, "rank": 1,
                                     "own": True, "reason": "footnote on page 1; said to be the paper's code"}
    assert info["own_code"] is True
    # then the links printed in the text of the last page (one broken across columns), not example.org
    assert [(link["url"], link["kind"], link["own"]) for link in info["code_links"][1:]] == [
        ("https://github.com/other-lab/baseline-code", "github", False),
        ("https://huggingface.co/example-lab/sharp-nets-base", "huggingface", False)]
    captions = [c["caption"] for c in info["table_captions"]]
    assert captions == [f"Table {t.number}: {t.caption}" for s in SAMPLE.sections for t in s.tables]
    assert info["tables"] == len(TABLES)
    assert info["warnings"] == []
    assert info["cached"] is False


def test_fetch_again_is_a_cache_hit(arxiv, call):
    call("paper_fetch", source="2106.01234")
    requests_before = (len(arxiv.api_requests), arxiv.pdf_requests)
    again = call("paper_fetch", source="2106.01234")
    assert again["cached"] is True
    assert (len(arxiv.api_requests), arxiv.pdf_requests) == requests_before


@pytest.mark.parametrize("source, key", [
    ("2106.01234v1", "arxiv-2106.01234v1"),
    ("arXiv:2106.01234", "arxiv-2106.01234"),
    ("https://arxiv.org/abs/2106.01234v1", "arxiv-2106.01234v1"),
    ("https://arxiv.org/pdf/2106.01234.pdf", "arxiv-2106.01234"),
    ("hep-th/9901001", "arxiv-hep-th_9901001"),
    ("http://arxiv.org/abs/hep-th/9901001v1", "arxiv-hep-th_9901001v1"),
])
def test_fetch_accepts_every_kind_of_arxiv_source(arxiv, call, source, key):
    info = call("paper_fetch", source=source)
    assert info["id"] == key
    assert info["page_count"] > 5


def test_fetch_by_https_style_url_and_local_path(arxiv, call, lab, paper_pdf, monkeypatch, tmp_path):
    arxiv.files["/papers/sharp.pdf"] = (200, "application/pdf", paper_pdf)
    by_url = call("paper_fetch", source=arxiv.base + "/papers/sharp.pdf")
    assert by_url["id"].startswith("url-") and by_url["tables"] == len(TABLES)
    assert by_url["title"] == SAMPLE.title
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local.pdf").write_bytes(paper_pdf)
    by_path = call("paper_fetch", source="local.pdf")
    assert by_path["id"].startswith("file-") and by_path["source"] == "local.pdf"
    assert call("paper_fetch", source=str(tmp_path / "local.pdf"))["cached"] is True


def test_fetch_links_the_campaign(arxiv, call, lab):
    from conftest import SIMPLE_CAMPAIGN

    campaign = call("campaign_create", **SIMPLE_CAMPAIGN)["id"]
    info = call("paper_fetch", source="2106.01234", campaign=campaign)
    assert info["campaign_id"] == campaign
    row = next(lab.db.query("SELECT paper_id FROM campaigns WHERE id = ?", [campaign]))
    assert row["paper_id"] == "arxiv-2106.01234"
    paper = next(lab.db.query("SELECT * FROM papers WHERE id = 'arxiv-2106.01234'"))
    assert paper["campaign_id"] == campaign and paper["pages"] == info["page_count"]


def test_extra_roots_come_from_the_environment(call, call_error, lab, paper_pdf, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "p.pdf").write_bytes(paper_pdf)
    monkeypatch.chdir(lab.home)
    assert "outside the directories" in call_error("paper_fetch", source=str(elsewhere / "p.pdf"))
    monkeypatch.setenv("SOTALAB_PAPER_ROOTS", f"/nonexistent{os.pathsep}{elsewhere}")
    assert call("paper_fetch", source=str(elsewhere / "p.pdf"))["tables"] == len(TABLES)


# ---------------------------------------------------------------- read, tables, results


@pytest.fixture
def fetched(arxiv, call) -> str:
    return call("paper_fetch", source="2106.01234")["id"]


def test_read_pages_is_marked_untrusted_and_bounded(call, fetched):
    page = call("paper_read", paper=fetched, pages="1")
    assert page["untrusted"] is True and "not instructions" in page["notice"]
    assert page["text"].startswith("<<<BEGIN UNTRUSTED DOCUMENT CONTENT>>>\n[page 1]\nSharp Nets")
    assert page["text"].endswith("<<<END UNTRUSTED DOCUMENT CONTENT>>>")
    assert SAMPLE.code_url in page["text"]
    whole = call("paper_read", paper=fetched, pages="2-3")
    assert (whole["first_page"], whole["last_page"]) == (2, 3)


def test_read_pages_with_cursor_reassembles_the_text(call, fetched):
    pieces, cursor = [], None
    while True:
        part = call("paper_read", paper=fetched, pages="1-4", max_chars=1000, cursor=cursor)
        body = part["text"].removeprefix("<<<BEGIN UNTRUSTED DOCUMENT CONTENT>>>\n")
        pieces.append(body.removesuffix("\n<<<END UNTRUSTED DOCUMENT CONTENT>>>"))
        cursor = part["next_cursor"]
        if cursor is None:
            break
    assert len(pieces) > 3
    assert len("".join(pieces)) == part["total_chars"]
    assert "[page 4]" in "".join(pieces)


def test_read_section(call, fetched):
    outline = {o["title"]: o["page"] for o in call("paper_fetch", source="2106.01234")["outline"]}
    section = call("paper_read", paper=fetched, section="Experiments")
    assert section["section"] == "3 Experiments"
    assert (section["first_page"], section["last_page"]) == (outline["3 Experiments"], outline["4 Ablations"])
    assert "3 Experiments, part 1:" in section["text"] and "4 Ablations, part" not in section["text"]
    assert "Table 3: Full sweep" in section["text"]
    assert call("paper_read", paper=fetched, section="2")["section"] == "2 Method"


def test_outline_from_headings_when_the_pdf_has_none(call, tmp_path, monkeypatch):
    paper = sample_paper()
    paper.outline = False
    monkeypatch.chdir(tmp_path)
    (tmp_path / "no-outline.pdf").write_bytes(render(paper))
    info = call("paper_fetch", source="no-outline.pdf")
    assert info["outline_source"] == "headings"
    assert [o["title"] for o in info["outline"]] == ["Abstract"] + [s.title for s in paper.sections]
    section = call("paper_read", paper=info["id"], section="4")
    assert section["section"] == "4 Ablations" and "Table 4: Ablation" in section["text"]


def test_read_errors(call, call_error, fetched):
    assert "no section matching 'Related work'" in call_error("paper_read", paper=fetched, section="Related work")
    assert "outside 1-" in call_error("paper_read", paper=fetched, pages="30-31")
    assert "no fetched paper" in call_error("paper_read", paper="arxiv-9999.99999")


def test_tables_stitch_the_three_page_table(call, fetched):
    result = call("paper_tables", paper=fetched, caption_contains="full sweep", max_rows=1000)
    assert result["total"] == 1 and result["untrusted"] is True
    table = result["tables"][0]
    assert table["label"] == "Table 3"
    assert len(table["pages"]) == 3 and table["pages"] == list(range(table["pages"][0], table["pages"][0] + 3))
    assert table["header"] == LONG_TABLE.header
    assert table["rows"] == LONG_TABLE.rows
    assert table["markdown"].splitlines()[0] == "| Run | LR | Accuracy (%) | Step |"


def test_unruled_table_is_found_by_caption_and_stitched_by_its_grid(call, fetched):
    plain = TABLES[-1]
    table = call("paper_tables", paper=fetched, caption_contains="without rules", max_rows=1000)["tables"][0]
    assert len(table["pages"]) == 2
    assert table["header"] == plain.header and table["rows"] == plain.rows


def test_tables_match_what_was_put_in_and_page(call, fetched):
    result = call("paper_tables", paper=fetched, limit=2)
    assert result["total"] == len(TABLES) and result["next_cursor"] == "2"
    rest = call("paper_tables", paper=fetched, cursor=result["next_cursor"], max_rows=5)
    got = result["tables"] + rest["tables"]
    assert len(got) == len(TABLES)
    for table, want in zip(got, TABLES):
        assert table["caption"] == f"Table {want.number}: {want.caption}"
        assert table["header"] == want.header
        assert table["rows"] == want.rows[:len(table["rows"])]
    assert rest["tables"][0]["truncated"] is True and rest["tables"][0]["row_count"] == len(LONG_TABLE.rows)


def test_tables_result_stays_bounded(call, lab, tmp_path, monkeypatch):
    """A 2,500-row table comes back cut to fit one result, flagged truncated."""
    from papers_pdfgen import Paper, Section, Table

    rows = [[f"config-{i:04d}", f"{i % 97}.{i % 10}", "x" * 30] for i in range(2500)]
    paper = Paper("Huge", "A. B.", "Big table.", [Section("1 Intro", 2, [Table(1, "All configs.", ["Config", "Acc.", "Note"], rows)])])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "huge.pdf").write_bytes(render(paper))
    paper_id = call("paper_fetch", source="huge.pdf")["id"]
    table = call("paper_tables", paper=paper_id, max_rows=1000)["tables"][0]
    assert table["row_count"] == 2500 and table["truncated"] is True
    assert 10 < len(table["rows"]) < 1000 and table["rows"] == rows[:len(table["rows"])]


def test_results_find_the_metric_cells(call, fetched):
    ours = call("paper_results", paper=fetched, metric="accuracy", method="ours")
    main = [c for c in ours["cells"] if c["table"] == "t2"]
    assert [(c["column_header"], c["value"], c["unit"]) for c in main] == [
        ("CIFAR-10 Acc. (%)", 97.2, "%"), ("ImageNet Top-1 Acc. (%)", 71.6, "%")]
    assert main[0]["row_header"] == "Ours"
    # the per-seed table names the method in its second column
    per_seed = [c["value"] for c in ours["cells"] if c["table"] == "t6"]
    assert per_seed == [float(row[2]) for row in TABLES[-1].rows if row[1] == "Ours"]
    top1 = call("paper_results", paper=fetched, metric="Top-1 accuracy")
    assert {c["value"] for c in top1["cells"]} == {69.8, 70.9, 71.6}
    errors = call("paper_results", paper=fetched, metric="error rate")
    assert [c["value"] for c in errors["cells"]] == [2.8, 3.4, 3.9]
    bleu = call("paper_results", paper=fetched, metric="bleu")  # from the booktabs table; the paper's own rows first
    assert [(c["row_header"], c["value"]) for c in bleu["cells"]] == [("Ours", 29.8), ("Ours-large", 30.4), ("Transformer", 27.3)]
    assert bleu["cells"][0]["confidence"] > bleu["cells"][2]["confidence"] and "paper's own" in bleu["cells"][0]["reason"]
    assert call("paper_results", paper=fetched, metric="F1 score")["total"] == 0


# ---------------------------------------------------------------- bad input


def test_unknown_id(arxiv, call_error, lab):
    assert "arXiv has no paper with id 2999.00001" in call_error("paper_fetch", source="2999.00001")
    assert papers_dir_entries(lab) == []


def test_arxiv_pdf_missing(arxiv, call_error, lab):
    message = call_error("paper_fetch", source="2205.00003")
    assert "/pdf/2205.00003v1 failed: HTTP 404" in message
    assert papers_dir_entries(lab) == [] and list(lab.db.query("SELECT id FROM papers")) == []


def test_withdrawn_paper(arxiv, call_error, lab):
    message = call_error("paper_fetch", source="2203.00001")
    assert "2203.00001v2 has been withdrawn" in message and "2203.00001v1" in message
    assert arxiv.pdf_requests == 0 and papers_dir_entries(lab) == []


@pytest.mark.parametrize("path, status, content_type, body, expected", [
    ("/data.txt", 200, "text/plain", b"just,some,csv\n1,2,3\n", "is not a PDF"),
    ("/error.html", 200, "text/html", b"<!DOCTYPE html><html><body>Please log in</body></html>", "is an HTML page"),
    ("/gone.pdf", 404, "text/html", b"<html>not here</html>", "HTTP 404"),
    ("/empty.pdf", 200, "application/pdf", b"", "empty body"),
])
def test_bad_urls(arxiv, call_error, lab, path, status, content_type, body, expected):
    arxiv.files[path] = (status, content_type, body)
    assert expected in call_error("paper_fetch", source=arxiv.base + path)
    assert papers_dir_entries(lab) == []


def test_plain_http_and_other_schemes_are_refused(call_error):
    assert "only https URLs" in call_error("paper_fetch", source="http://example.com/paper.pdf")
    assert "only https URLs" in call_error("paper_fetch", source="file:///etc/passwd")
    assert "not an abs/ or pdf/ page" in call_error("paper_fetch", source="https://arxiv.org/list/cs.LG/recent")


def _bad_pdf(kind: str, paper_pdf: bytes) -> bytes:
    import pymupdf

    if kind == "truncated":
        return paper_pdf[: len(paper_pdf) // 10]  # cut before the page tree
    if kind == "corrupt":
        return b"%PDF-1.7\n" + bytes(range(256)) * 40
    if kind == "zero-page":  # PyMuPDF refuses to save a document without pages
        return (b"%PDF-1.4\n1 0 obj\n<</Type/Catalog/Pages 2 0 R>>\nendobj\n"
                b"2 0 obj\n<</Type/Pages/Kids[]/Count 0>>\nendobj\ntrailer\n<</Root 1 0 R>>\n%%EOF\n")
    doc = pymupdf.open("pdf", paper_pdf)
    data = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")
    doc.close()
    return data


@pytest.mark.parametrize("kind, expected", [
    ("truncated", "corrupt or truncated"),
    ("corrupt", "corrupt or truncated"),
    ("zero-page", "has no pages"),
    ("encrypted", "encrypted and needs a password"),
])
def test_bad_pdfs_are_refused_and_leave_nothing(call_error, lab, paper_pdf, tmp_path, monkeypatch, kind, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.pdf").write_bytes(_bad_pdf(kind, paper_pdf))
    assert expected in call_error("paper_fetch", source="bad.pdf")
    assert papers_dir_entries(lab) == []
    assert list(lab.db.query("SELECT id FROM papers")) == []


def test_slightly_truncated_pdf_is_repaired_with_a_warning(call, paper_pdf, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cut.pdf").write_bytes(paper_pdf[: paper_pdf.rfind(b"xref") - 3000])  # lost its tail
    info = call("paper_fetch", source="cut.pdf")
    assert any("damaged" in w and "repaired" in w for w in info["warnings"])


def test_scanned_pdf_warns_no_text_layer(call, tmp_path, monkeypatch, paper_pdf):
    import pymupdf

    paper = pymupdf.open("pdf", paper_pdf)
    doc = pymupdf.open()
    for number in range(2):  # a "scan": each page only a picture of a printed page
        pixmap = paper[number].get_pixmap(dpi=72, colorspace=pymupdf.csGRAY)
        page = doc.new_page()
        page.insert_image(page.rect, pixmap=pixmap)
    monkeypatch.chdir(tmp_path)
    doc.save(tmp_path / "scan.pdf")
    info = call("paper_fetch", source="scan.pdf")
    assert any(w.startswith("no text layer, OCR not attempted") for w in info["warnings"])
    assert info["page_count"] == 2 and info["tables"] == 0


def test_two_thousand_pages_are_capped_with_a_warning(call, tmp_path, monkeypatch):
    import pymupdf

    from sotalab.tools.papers import extract

    doc = pymupdf.open()
    for n in range(2000):
        doc.new_page(width=200, height=200).insert_text((20, 40), f"page {n + 1} of a very long report")
    monkeypatch.chdir(tmp_path)
    doc.save(tmp_path / "long.pdf")
    info = call("paper_fetch", source="long.pdf")
    assert info["page_count"] == 2000 and info["pages_processed"] == extract.MAX_PAGES
    assert f"only the first {extract.MAX_PAGES} were processed" in " ".join(info["warnings"])
    last = call("paper_read", paper=info["id"], pages=str(extract.MAX_PAGES))
    assert f"page {extract.MAX_PAGES} of a very long report" in last["text"]


def test_local_paths_outside_roots_dirs_and_symlinks(call_error, lab, tmp_path, monkeypatch, paper_pdf):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("SOTALAB_PAPER_ROOTS", raising=False)
    outside = tmp_path / "outside.pdf"
    outside.write_bytes(paper_pdf)
    assert "outside the directories" in call_error("paper_fetch", source=str(outside))
    assert "outside the directories" in call_error("paper_fetch", source="../outside.pdf")
    (cwd / "escape.pdf").symlink_to(outside)
    assert "outside the directories" in call_error("paper_fetch", source="escape.pdf")
    (cwd / "folder").mkdir()
    assert "is not a file" in call_error("paper_fetch", source="folder")
    assert "does not exist" in call_error("paper_fetch", source="missing.pdf")
    assert "may not start with '-'" in call_error("paper_fetch", source="-rf.pdf")
    assert papers_dir_entries(lab) == []


def test_results_read_thousands_separators_and_leading_dot_decimals():
    from sotalab.tools.papers import results

    table = {"id": "t1", "caption": "Table 1", "pages": [3], "header": ["Method", "Params", "Acc.", "Perplexity"],
             "rows": [["Ours", "1,234,567", ".952", "12,345.6"], ["Base", "0,5", "−.5", "3.2 ± 0.1"]]}
    assert [c["value"] for c in results.find([table], "params")] == [1234567.0, 0.5]
    assert [c["value"] for c in results.find([table], "accuracy")] == [0.952, -0.5]
    assert [c["value"] for c in results.find([table], "perplexity")] == [12345.6, 3.2]


def test_blank_section_is_refused_not_read_as_the_first_one(call_error, fetched):
    assert "section" in call_error("paper_read", paper=fetched, section="   ")


def test_fetch_result_stays_bounded_for_huge_author_lists_and_outlines(arxiv, call, call_error, tmp_path, monkeypatch):
    import pymupdf

    arxiv.add("2207.00001", "Observation of a collaboration-sized author list", render(SAMPLE),
              authors=tuple(f"Physicist Number {i}" for i in range(3000)))
    info = call("paper_fetch", source="2207.00001")
    assert len(info["authors"]) == 50 and info["authors"][0] == "Physicist Number 0"
    assert any("3000 authors" in w for w in info["warnings"])

    doc = pymupdf.open()  # a document whose outline, captions and links are absurdly long
    for i in range(30):
        page = doc.new_page()
        page.insert_text((72, 72), f"Table {i + 1}: " + "very long caption words " * 30, fontsize=6)
        page.insert_text((72, 100), "https://github.com/" + "a" * 3000, fontsize=4)
    doc.set_toc([[1, f"Section {i} " + "x" * 5000, 1] for i in range(200)])
    monkeypatch.chdir(tmp_path)
    doc.save(tmp_path / "long.pdf")
    info = call("paper_fetch", source="long.pdf")
    assert len(info["outline"]) == 200 and all(len(o["title"]) <= 200 for o in info["outline"])
    assert all(len(c["caption"]) <= 300 for c in info["table_captions"])
    assert len(call_error("paper_read", paper=info["id"], section="Related work")) < 5000


@pytest.mark.timeout(60)
def test_a_server_that_trickles_bytes_hits_the_download_deadline(tmp_path):
    from sotalab.tools.errors import LabError
    from sotalab.tools.papers import fetch

    class Trickle(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.end_headers()
            try:
                self.wfile.write(b"%PDF-1.7\n")
                for _ in range(1000):  # a byte every 0.2 s: never a full chunk, never a read timeout
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass  # the client gave up

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dest = tmp_path / "paper.pdf"
    try:
        with pytest.raises(LabError, match="took over 2 s"):
            fetch.download(f"http://127.0.0.1:{server.server_address[1]}/slow.pdf", dest, timeout_s=2)
        assert not dest.exists()
    finally:
        server.shutdown()


def test_results_stay_bounded_when_a_metric_fills_a_big_table(call, tmp_path, monkeypatch):
    from papers_pdfgen import Paper, Section, Table

    header = ["Config"] + [f"Top-1 accuracy on benchmark split number {c} (%)" for c in range(8)]
    rows = [[f"configuration-{i:03d}"] + [f"{50 + (i + c) % 40}.{c}" for c in range(8)] for i in range(60)]
    caption = "Accuracy of every configuration on every split. " * 5
    paper = Paper("Wide", "A. B.", "Wide table.", [Section("1 Intro", 1, [Table(1, caption, header, rows)])])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wide.pdf").write_bytes(render(paper))
    paper_id = call("paper_fetch", source="wide.pdf")["id"]
    found = call("paper_results", paper=paper_id, metric="accuracy", limit=200)
    assert found["total"] >= 200 and 0 < len(found["cells"]) <= 200


def test_a_server_started_in_the_filesystem_root_does_not_open_every_pdf(call_error, lab, tmp_path, monkeypatch,
                                                                         paper_pdf):
    """Some hosts start MCP servers with cwd=/; the working directory then allows nothing more."""
    monkeypatch.chdir("/")
    monkeypatch.delenv("SOTALAB_PAPER_ROOTS", raising=False)
    elsewhere = tmp_path / "private" / "statement.pdf"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(paper_pdf)
    assert "outside the directories" in call_error("paper_fetch", source=str(elsewhere))

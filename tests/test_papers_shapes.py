"""Papers as real ones are printed: each shape that broke extraction on published PDFs,
generated (tests/papers_pdfgen.py: hard_paper) and checked against what was put in.

A plot beside a table, captions below their tables, cells with no space between them,
a two-line header and a group title, a tall three-rule table, a table continued over
three pages with its header repeated and "continued" lines, a table printed as a picture,
an arXiv side stamp, a URL broken at a line end, a cited repository before the paper's
own; then matching (synonyms, direction, whole-word methods, "ours" and bold) and the
page image tool.
"""

from __future__ import annotations

import base64
import threading

import pytest

import papers_pdfgen as gen
from test_papers import ArxivStandIn, extract_each_pdf_once  # noqa: F401 (the fixture applies here too)


@pytest.fixture(scope="module")
def hard_pdf() -> bytes:
    return gen.hard_paper()


@pytest.fixture
def offline_arxiv(monkeypatch):
    """arXiv unreachable: a loopback port nobody listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SOTALAB_ARXIV_API_URL", f"http://127.0.0.1:{port}/api/query")
    monkeypatch.setenv("SOTALAB_ARXIV_INTERVAL_S", "0.01")


@pytest.fixture
def hard(call, tmp_path, monkeypatch, hard_pdf, offline_arxiv) -> dict:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hard.pdf").write_bytes(hard_pdf)
    return call("paper_fetch", source="hard.pdf")


def tables_by_label(call, paper: str) -> dict:
    return {t["label"]: t for t in call("paper_tables", paper=paper, limit=50, max_rows=1000)["tables"]}


# ---------------------------------------------------------------- identity


def test_title_is_read_by_layout_not_from_the_stamp_or_a_file_name(hard):
    assert hard["title"] == gen.HARD_TITLE  # not "arXiv:2106.01234v1 [cs.LG] ..." nor the metadata's "main.dvi"
    assert hard["arxiv_id"] == "2106.01234v1"  # the stamp names the paper
    assert any("arXiv:2106.01234v1" in w and "could not confirm" in w for w in hard["warnings"])


def test_abstract_ends_at_the_split_introduction_heading(hard):
    # its lines start with "A plot", "A method": none of them ends the abstract; "1" / "Introduction" does
    assert hard["abstract"] == gen.HARD_ABSTRACT


def test_a_stamped_pdf_takes_title_authors_and_abstract_from_arxiv(call, tmp_path, monkeypatch, hard_pdf):
    server = ArxivStandIn()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("SOTALAB_ARXIV_API_URL", server.base + "/api/query")
        monkeypatch.setenv("SOTALAB_ARXIV_INTERVAL_S", "0.05")
        server.add("2106.01234", "Shapes of Real Tables (the arXiv title)", None, abstract="The abstract arXiv has.",
                   authors=("Ada Lovelace", "Alan Turing", "Grace Hopper"))
        monkeypatch.chdir(tmp_path)
        (tmp_path / "stamped.pdf").write_bytes(hard_pdf)
        info = call("paper_fetch", source="stamped.pdf")
    finally:
        server.shutdown()
        server.server_close()
    assert (info["title"], info["abstract"]) == ("Shapes of Real Tables (the arXiv title)", "The abstract arXiv has.")
    assert info["authors"] == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    assert info["arxiv_id"] == "2106.01234v1" and server.pdf_requests == 0  # the local PDF is the one read


# ---------------------------------------------------------------- tables


def test_table_beside_a_plot_with_a_two_line_header_and_unspaced_cells(call, hard):
    table = tables_by_label(call, hard["id"])["Table 1"]
    assert table["caption"] == gen.MAIN.caption and table["pages"] == [1]
    assert table["header"] == gen.MAIN.merged_header() == ["Method", "Top-1 err. (%)", "Top-5 err. (%)"]
    assert table["rows"] == gen.MAIN.rows  # "28.07" and "9.33" stay two cells
    assert table["regions"][0]["bbox"][0] > gen.PAGE_W / 2 - 20  # the right column: the plot is not part of it


def test_captions_below_their_tables_go_to_those_tables(call, hard):
    tables = tables_by_label(call, hard["id"])
    for want in (gen.BELOW_A, gen.BELOW_B):
        got = tables[want.caption.split(":")[0]]
        assert got["caption"] == want.caption
        assert (got["header"], got["rows"]) == (want.merged_header(), want.rows)


def test_a_group_title_heads_every_column_under_it(call, hard):
    table = tables_by_label(call, hard["id"])["Table 4"]
    assert table["header"] == gen.GROUPED.merged_header() == [
        "Method", "CIFAR-10 Acc.", "CIFAR-10 Err.", "CIFAR-100 Acc.", "CIFAR-100 Err."]
    assert table["rows"] == gen.GROUPED.rows


def test_a_tall_three_rule_table_is_whole(call, hard):
    table = tables_by_label(call, hard["id"])["Table 5"]
    assert table["header"] == gen.TALL.header[0] and table["rows"] == gen.TALL.rows


def test_a_continued_table_is_stitched_without_repeated_headers_or_continued_lines(call, hard):
    table = tables_by_label(call, hard["id"])["Table 6"]
    assert table["pages"] == [4, 5, 6] and [r["page"] for r in table["regions"]] == [4, 5, 6]
    assert table["header"] == gen.LONG.header[0]
    assert table["rows"] == gen.LONG.rows  # 120 rows: no header row repeated, no "Continued on next page"
    assert table["row_pages"] == [4] * 45 + [5] * 45 + [6] * 30


def test_only_a_page_whose_top_fits_the_tables_columns_is_analysed_as_its_continuation(call, tmp_path, monkeypatch):
    """The layout analyser costs about half a second a page: the page after a table gets it
    only when lines at its top fit that table's columns, and no continued table is lost."""
    import pymupdf

    from sotalab.tools.papers import tables

    data = gen.after_table_paper()
    doc = pymupdf.open("pdf", data)
    before, analysed = None, []
    for index, page in enumerate(doc):
        text, words = page.get_text(), page.get_text("words")
        if cand := tables.candidate(page, index, text, words, before):
            before = tables.page_parts(page, cand, words, text)
            analysed.append(index + 1)
    assert analysed == [1, 3, 4]  # page 2 is prose after a table; page 4 continues Table A1
    monkeypatch.chdir(tmp_path)
    (tmp_path / "after.pdf").write_bytes(data)
    table = tables_by_label(call, call("paper_fetch", source="after.pdf")["id"])["Table A1"]  # an appendix label
    assert (table["caption"], table["pages"]) == (gen.APPENDIX.caption, [3, 4])
    assert (table["header"], table["rows"]) == (gen.APPENDIX.header[0], gen.APPENDIX.rows)


def test_a_table_printed_as_a_picture_is_a_warning_that_points_at_the_page_image(call, hard):
    warning = next(w for w in hard["warnings"] if w.startswith("Table 7"))
    assert "page 7 is an image" in warning and "paper_page_image(page=7, region=[" in warning
    assert "Table 7" not in tables_by_label(call, hard["id"])


def test_a_slide_deck_of_pictures_warns_instead_of_finding_nothing(call, tmp_path, monkeypatch):
    import pymupdf

    deck = pymupdf.open()
    sheet = pymupdf.open()
    gen.draw_table(sheet.new_page(width=400, height=200), 20, 20, gen.BELOW_A)
    for n in range(3):
        slide = deck.new_page(width=720, height=405)
        slide.insert_text((40, 40), f"Slide {n + 1}: results", fontsize=20)
        slide.insert_image(pymupdf.Rect(60, 80, 660, 380), pixmap=sheet[0].get_pixmap(dpi=100))
    monkeypatch.chdir(tmp_path)
    deck.save(tmp_path / "deck.pdf")
    info = call("paper_fetch", source="deck.pdf")
    assert info["tables"] == 0
    assert any("no text tables found" in w and "3 page(s) hold large images" in w for w in info["warnings"])


# ---------------------------------------------------------------- code links


def test_the_papers_own_code_ranks_first_and_a_broken_url_is_joined(hard):
    own, cited = hard["code_links"][:2]
    assert (own["url"], own["own"], own["rank"]) == (gen.OWN_CODE, True, 1)  # printed over two lines
    assert "said to be the paper's code" in own["reason"]
    assert (cited["url"], cited["own"]) == (gen.CITED_CODE, False)
    assert hard["own_code"] is True


def test_a_paper_without_code_of_its_own_says_so(call, tmp_path, monkeypatch):
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 72), "A Study Without Code", fontsize=18)
    page.insert_text((72, 300), f"We build on the implementation at {gen.CITED_CODE} for all baselines.", fontsize=9)
    monkeypatch.chdir(tmp_path)
    doc.save(tmp_path / "nocode.pdf")
    info = call("paper_fetch", source="nocode.pdf")
    assert [(link["url"], link["own"]) for link in info["code_links"]] == [(gen.CITED_CODE, False)]
    assert info["own_code"] is False


# ---------------------------------------------------------------- matching


def test_the_papers_own_number_comes_first_with_direction_page_and_box(call, hard):
    import pymupdf

    cells = call("paper_results", paper=hard["id"], metric="top-1 error rate")["cells"]
    best = cells[0]
    assert (best["row_header"], best["value"], best["direction"], best["bold"]) == ("ResNet-152 (ours)", 19.38, "min", True)
    assert best["confidence"] > cells[1]["confidence"]
    assert "paper's own" in best["reason"] and "bold" in best["reason"]
    page = pymupdf.open("pdf", gen.hard_paper())[best["page"] - 1]
    printed = page.search_for("19.38")[0]
    assert (pymupdf.Rect(best["bbox"]) + (-0.1, -0.1, 0.1, 0.1)).contains(printed)  # boxes are rounded to 0.1 pt


def test_metric_synonyms_and_the_caption_are_matched(call, hard):
    ppl = call("paper_results", paper=hard["id"], metric="perplexity")["cells"]
    assert (ppl[0]["row_header"], ppl[0]["value"], ppl[0]["direction"]) == ("Ours", 22.1, "min")
    acc = call("paper_results", paper=hard["id"], metric="CIFAR-100 accuracy")["cells"]
    assert (acc[0]["row_header"], acc[0]["value"], acc[0]["direction"]) == ("Ours", 82.5, "max")
    assert sorted(c["value"] for c in acc) == [77.3, 80.2, 82.5]  # the CIFAR-100 column only


def test_a_method_is_matched_on_whole_words_not_inside_a_negation(call, hard):
    cells = call("paper_results", paper=hard["id"], metric="top-1 err", method="Clipping")["cells"]
    assert [(c["row_header"], c["value"]) for c in cells] == [("Clipping", 25.4)]
    assert call("paper_results", paper=hard["id"], metric="top-1 err", method="clip")["total"] == 0


# ---------------------------------------------------------------- looking at the page


def _png(result: dict) -> bytes:
    (image,) = result["images"]
    data = base64.b64decode(image["data"])
    assert data.startswith(b"\x89PNG") and image["mime_type"] == "image/png"
    return data


def test_page_image_shows_a_tables_region_bounded_in_size(call, hard):
    from sotalab.tools.papers.tools import IMAGE_BUDGET_BYTES

    whole = call("paper_page_image", paper=hard["id"], page=1)
    assert len(_png(whole)) <= IMAGE_BUDGET_BYTES and max(whole["images"][0]["width"], whole["images"][0]["height"]) <= 1400
    table = call("paper_page_image", paper=hard["id"], table="t1")
    assert table["page"] == 1 and table["region"][0] > gen.PAGE_W / 2 - 30
    small = call("paper_page_image", paper=hard["id"], page=7, region=[54, 140, 354, 230], max_side=300)
    assert small["images"][0]["width"] <= 300 and len(_png(small)) > 100


def test_page_image_refuses_what_it_cannot_show(call_error, hard):
    assert "outside 1-7" in call_error("paper_page_image", paper=hard["id"], page=8)
    assert "is empty" in call_error("paper_page_image", paper=hard["id"], page=1, region=[300, 300, 100, 400])
    assert "lies outside page 1" in call_error("paper_page_image", paper=hard["id"], page=1,
                                               region=[5000, 5000, 6000, 6000])
    assert "no table 't99'" in call_error("paper_page_image", paper=hard["id"], table="t99")
    assert "give page" in call_error("paper_page_image", paper=hard["id"])

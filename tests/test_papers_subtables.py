"""Several tables under one caption, as real papers print them, generated
(tests/papers_pdfgen.py: subtables_paper) and checked against what was put in.

Sub-tables side by side and stacked, each with its "(a)" sub-caption below it (or above
it); methods as columns with a second header row halfway down the table; a header of three
levels (method, year, metric) over columns of numbers set closer than a space. Each comes back as its own
table under the shared caption, with one header per column, and ``paper_results`` finds
the paper's number first.
"""

from __future__ import annotations

import pytest

import papers_pdfgen as gen
from test_papers import extract_each_pdf_once  # noqa: F401 (the fixture applies here too)


@pytest.fixture(scope="module")
def subtables_pdf() -> bytes:
    return gen.subtables_paper()


@pytest.fixture
def paper(call, tmp_path, monkeypatch, subtables_pdf) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOTALAB_ARXIV_API_URL", "http://127.0.0.1:9/api/query")  # no arXiv id in it: never asked
    (tmp_path / "subtables.pdf").write_bytes(subtables_pdf)
    return call("paper_fetch", source="subtables.pdf")["id"]


def tables_on(call, paper: str, page: int) -> list[dict]:
    tables = call("paper_tables", paper=paper, limit=50, max_rows=1000)["tables"]
    return [t for t in tables if t["pages"] == [page]]


def test_sub_tables_side_by_side_and_stacked_are_separate_tables_under_one_caption(call, paper):
    got = tables_on(call, paper, 1)
    assert [(t["caption"], t["header"], t["rows"]) for t in got] == [
        (gen.SUB_CAPTION, want.header[0], want.rows) for want in (gen.SUB_A, gen.SUB_B, gen.SUB_C)]
    assert [t["subcaption"] for t in got] == [want.caption for want in (gen.SUB_A, gen.SUB_B, gen.SUB_C)]
    assert got[0]["regions"][0]["bbox"][2] < got[1]["regions"][0]["bbox"][0]  # (a) stands left of (b)
    assert got[1]["regions"][0]["bbox"][3] < got[2]["regions"][0]["bbox"][1]  # (b) stands over (c)
    (zero_shot,) = call("paper_tables", paper=paper, caption_contains="zero-shot")["tables"]
    assert zero_shot["rows"] == gen.SUB_B.rows


def test_each_sub_table_keeps_its_sub_caption_and_its_own_column(call, paper):
    cells = call("paper_results", paper=paper, metric="R@1", method="Ours-mean")["cells"]
    assert [(c["value"], c["column_header"]) for c in cells] == [(42.1, "R@1"), (43.1, "R@1")]  # not R@5's numbers
    assert "sub-table '(a) Training on split A'" in cells[0]["reason"]
    assert "sub-table '(c) Training on split B'" in cells[1]["reason"]
    zero_shot = call("paper_results", paper=paper, metric="R@1", method="Straight")["cells"]
    assert [(c["value"], c["page"]) for c in zero_shot] == [(31.2, 1)] and "(b) Zero-shot" in zero_shot[0]["reason"]


def test_a_header_row_halfway_down_starts_a_new_table_with_that_header(call, paper):
    got = tables_on(call, paper, 2)
    assert [(t["caption"], t["header"], t["rows"]) for t in got] == [
        (gen.REHEADER_CAPTION, header, rows) for header, rows in gen.REHEADER_BLOCKS]
    cells = call("paper_results", paper=paper, metric="Electricity", method="TFT")["cells"]
    assert [(c["value"], c["row_header"], c["column_header"], c["page"]) for c in cells] == [
        (0.055, "Electricity", "TFT", 2)]  # methods as columns: the dataset names the metric
    assert call("paper_results", paper=paper, metric="Traffic", method="ARIMA")["cells"][0]["value"] == 0.223


def test_a_three_level_header_is_one_header_per_column_over_close_set_numbers(call, paper):
    (table,) = tables_on(call, paper, 3)
    assert table["caption"] == gen.LEVELS_CAPTION
    assert table["header"] == gen.LEVELS_HEADER  # "BEAT Ours MSE", "WPMixer 2025 MAE", ...
    assert table["rows"] == [[row[0] if r % 4 == 2 else ""] + row[1:] for r, row in enumerate(gen.LEVELS_ROWS)]
    cells = call("paper_results", paper=paper, metric="MSE", method="BEAT")["cells"]
    assert [c["value"] for c in cells] == [float(row[2]) for row in gen.LEVELS_ROWS]  # the method's column, in order
    assert "the column starts with 'BEAT'" in cells[0]["reason"] and cells[0]["direction"] == "min"
    mae = call("paper_results", paper=paper, metric="MAE", method="iTransformer")["cells"]
    assert mae[0]["value"] == float(gen.LEVELS_ROWS[0][9]) and mae[0]["column_header"] == "iTransformer 2024 MAE"


def test_sub_captions_above_their_tables_label_them_and_name_the_dataset(call, paper):
    got = tables_on(call, paper, 4)
    assert [(t["caption"], t["subcaption"], t["header"], t["rows"]) for t in got] == [
        (gen.ABOVE_CAPTION, want.caption, want.header[0], want.rows) for want in gen.ABOVE]
    cells = call("paper_results", paper=paper, metric="CIFAR-100 accuracy")["cells"]
    assert [(c["row_header"], c["value"]) for c in cells] == [("Ours", 82.5), ("SGD", 77.3), ("SAM", 80.2)]
    assert "under the sub-caption" in cells[0]["reason"] and "'(b) CIFAR-100'" in cells[0]["reason"]


def test_numbers_grouped_in_thousands_stay_one_cell_when_their_spaces_line_up(call, tmp_path, monkeypatch):
    # columns of numbers a space apart are split ("0.160 0.198"), but "1 281 167" is one number
    monkeypatch.chdir(tmp_path)
    (tmp_path / "thousands.pdf").write_bytes(gen.thousands_paper())
    (table,) = call("paper_tables", paper=call("paper_fetch", source="thousands.pdf")["id"])["tables"]
    assert (table["caption"], table["header"], table["rows"]) == (
        gen.THOUSANDS_CAPTION, ["Dataset", "Train", "Val", "Top-1"], gen.THOUSANDS_ROWS)


def test_a_table_set_in_two_halves_side_by_side_is_two_tables(call, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "halves.pdf").write_bytes(gen.halves_paper())
    paper = call("paper_fetch", source="halves.pdf")["id"]
    got = call("paper_tables", paper=paper)["tables"]
    assert [(t["caption"], t["header"], t["rows"]) for t in got] == [
        (gen.HALVES_CAPTION, ["Model", "Acc. (%)"], [half[n] for half in gen.HALVES if any(half[n])]) for n in (0, 1)]
    cells = call("paper_results", paper=paper, metric="accuracy", method="ViT-B")["cells"]
    assert [c["value"] for c in cells] == [81.8]  # not ResNet-50's 76.1 from the same printed line

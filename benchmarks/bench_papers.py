"""Paper extraction speed on a generated 35-page paper with 10 tables (one spans 8 pages).

Reports pages/s for text, the whole extraction (text, links, outline, all tables), and
the table step as a ratio against the reference: PyMuPDF's ``find_tables`` on every page
of the same document, in the same run, which must find the same tables.

    .venv/bin/python benchmarks/bench_papers.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from papers_pdfgen import benchmark_paper, render  # noqa: E402


def best_of(repeat: int, fn):
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times), result


def table_step(doc, texts, words, every_page: bool):
    """The table step alone: detection (or not) + find_tables + cell text + stitching."""
    from sotalab.tools.papers import tables

    parts = []
    for index, page in enumerate(doc):
        if every_page:
            cand = tables.Candidate(index, None, True)  # find_tables' defaults, whole page
        else:
            cand = tables.candidate(page, index, texts[index], words[index])
        if cand:
            parts += tables.page_parts(page, cand, words[index], texts[index])
    heights = {i: p.rect.height for i, p in enumerate(doc)}
    return [t.as_dict(i + 1) for i, t in enumerate(tables.stitch(parts, heights, dict(enumerate(words))))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    started = time.perf_counter()
    import pymupdf

    from sotalab.tools.papers import extract, tables
    import_s = time.perf_counter() - started

    paper = benchmark_paper()
    pdf = Path(tempfile.mkdtemp()) / "bench.pdf"
    pdf.write_bytes(render(paper))
    doc = pymupdf.open(pdf)
    pages = doc.page_count
    expected_tables = sum(len(s.tables) for s in paper.sections)

    text_s, _, texts = best_of(args.repeat, lambda: [p.get_text() for p in doc])
    words = [p.get_text("words") for p in doc]
    ours_s, ours_med, ours = best_of(args.repeat, lambda: table_step(doc, texts, words, every_page=False))
    ref_s, ref_med, reference = best_of(args.repeat, lambda: table_step(doc, texts, words, every_page=True))
    whole_s, whole_med, extraction = best_of(args.repeat, lambda: extract.extract(pdf))
    candidates = sum(1 for i, p in enumerate(doc) if tables.candidate(p, i, texts[i], words[i]))

    same = [(t["header"], t["rows"], t["pages"]) for t in ours] == [(t["header"], t["rows"], t["pages"]) for t in reference]
    spans = max(len(t["pages"]) for t in ours)
    print(f"document: {pages} pages, {expected_tables} tables put in; found {len(ours)} "
          f"(longest spans {spans} pages); candidate pages {candidates}/{pages}")
    print(f"same tables as find_tables on every page: {same}")
    print(f"import pymupdf (+ its layout models), once per process: {import_s:.2f} s")
    print(f"text: {pages / text_s:.0f} pages/s ({text_s * 1000:.0f} ms for {pages} pages)")
    print(f"table step: ours {ours_s * 1000:.0f} ms (median {ours_med * 1000:.0f}), "
          f"every-page find_tables {ref_s * 1000:.0f} ms (median {ref_med * 1000:.0f}); "
          f"speed-up {ref_s / ours_s:.1f}x (target >= 5x)")
    print(f"whole extraction (text, words, links, outline, tables): {whole_s:.2f} s "
          f"(median {whole_med:.2f} s; target < 2 s); {len(extraction['tables'])} tables")
    ok = same and len(ours) == expected_tables and spans == 8
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

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


def interleaved(repeat: int, **fns):
    """Run the contenders in turn, ``repeat`` rounds, so load from other processes hits
    them alike. Times are this process's CPU seconds (less disturbed by a busy machine
    than wall time; the work is single-threaded); best and median per contender."""
    times = {name: [] for name in fns}
    results = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            started = time.process_time()
            results[name] = fn()
            times[name].append(time.process_time() - started)
    return {name: (min(t), statistics.median(t), results[name]) for name, t in times.items()}


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
    with tempfile.TemporaryDirectory() as tmp:
        return measure(Path(tmp) / "bench.pdf", args.repeat)


def measure(pdf: Path, repeat: int) -> int:

    started = time.perf_counter()
    import pymupdf

    from sotalab.tools.papers import extract, tables
    import_s = time.perf_counter() - started

    paper = benchmark_paper()
    pdf.write_bytes(render(paper))
    doc = pymupdf.open(pdf)
    pages = doc.page_count
    expected_tables = sum(len(s.tables) for s in paper.sections)

    texts = [p.get_text() for p in doc]
    words = [p.get_text("words") for p in doc]
    runs = interleaved(
        repeat,
        text=lambda: [p.get_text() for p in doc],
        ours=lambda: table_step(doc, texts, words, every_page=False),
        reference=lambda: table_step(doc, texts, words, every_page=True),
        whole=lambda: extract.extract(pdf),
    )
    text_s = runs["text"][0]
    ours_s, ours_med, ours = runs["ours"]
    ref_s, ref_med, reference = runs["reference"]
    whole_s, whole_med, extraction = runs["whole"]
    wall = time.perf_counter()
    extract.extract(pdf)
    whole_wall = time.perf_counter() - wall
    candidates = sum(1 for i, p in enumerate(doc) if tables.candidate(p, i, texts[i], words[i]))

    same = [(t["header"], t["rows"], t["pages"]) for t in ours] == [(t["header"], t["rows"], t["pages"]) for t in reference]
    put_in = [(t.header, t.rows) for s in paper.sections for t in s.tables]
    as_put_in = [(t["header"], t["rows"]) for t in ours] == put_in
    spans = max(len(t["pages"]) for t in ours)
    print(f"document: {pages} pages, {expected_tables} tables put in; found {len(ours)} "
          f"(longest spans {spans} pages); candidate pages {candidates}/{pages}")
    print(f"same tables as find_tables on every page: {same}; cells exactly as put in: {as_put_in}")
    print(f"import pymupdf (+ its layout models), once per process: {import_s:.2f} s")
    print(f"text: {pages / text_s:.0f} pages/s ({text_s * 1000:.0f} ms for {pages} pages)")
    print(f"table step: ours {ours_s * 1000:.0f} ms (median {ours_med * 1000:.0f}), "
          f"every-page find_tables {ref_s * 1000:.0f} ms (median {ref_med * 1000:.0f}); "
          f"speed-up {ref_s / ours_s:.1f}x (target >= 5x)")
    print(f"whole extraction (text, words, links, outline, tables): {whole_s:.2f} s CPU "
          f"(median {whole_med:.2f} s; one more run: {whole_wall:.2f} s wall; target < 2 s); "
          f"{len(extraction['tables'])} tables")
    doc.close()
    return 0 if same and as_put_in and spans == 8 else 1


if __name__ == "__main__":
    sys.exit(main())

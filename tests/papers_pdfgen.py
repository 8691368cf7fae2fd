"""Research-paper PDFs made with PyMuPDF's Story (HTML rendering), for tests and benchmarks.

A generated paper is two-column body text with a PDF outline, a footnote GitHub link on
page 1, and ruled tables; a table given more rows than fit on a page flows across pages
with its caption only above the first part, the way real papers print long tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PAGE_W, PAGE_H = 612, 792
MARGIN = 54
GUTTER = 18
CSS = """
body { font-family: serif; font-size: 9pt; }
h1 { font-size: 16pt; text-align: center; }
h2 { font-size: 12pt; }
p { text-align: justify; margin-bottom: 4pt; }
table { border-collapse: collapse; width: 100%; }
td, th { border: 1px solid black; padding: 2pt; font-size: 8pt; }
.caption { font-size: 9pt; margin-top: 6pt; margin-bottom: 4pt; }
table.booktabs { border-top: 1.5px solid black; border-bottom: 1.5px solid black; }
table.booktabs td, table.booktabs th { border: none; }
table.booktabs tr.head th { border-bottom: 0.8px solid black; }
table.plain td, table.plain th { border: none; width: 25%; text-align: left; }
"""
SENTENCES = [
    "We study the behaviour of learned representations under distribution shift.",
    "The outcome of a controlled set of experiments on standard benchmarks is reported, as Table 2 shows.",
    "Sharpness-aware training flattens the loss surface around the solution found by SGD.",
    "Each configuration is trained with five seeds and we report the mean.",
    "Longer schedules help small models more than large ones.",
    "We release code, configurations and trained checkpoints.",
    "The effect persists across architectures, datasets and optimisers.",
    "Ablations isolate the contribution of every component of the method.",
]


@dataclass
class Table:
    number: int
    caption: str
    header: list[str]
    rows: list[list[str]]
    booktabs: bool = False  # horizontal rules only (top, under the header, bottom), as LaTeX papers print
    plain: bool = False  # no rules at all

    def html(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in self.rows)
        style = ' class="booktabs"' if self.booktabs else ' class="plain"' if self.plain else ""
        return (f'<p class="caption">Table {self.number}: {self.caption}</p>'
                f'<table{style}><tr class="head">{head}</tr>{body}</table>')


@dataclass
class Section:
    title: str
    paragraphs: int = 3
    tables: list[Table] = field(default_factory=list)
    inline: bool = False  # tables inside the two-column text, not full width on their own pages


@dataclass
class Paper:
    title: str
    authors: str
    abstract: str
    sections: list[Section]
    code_url: str = "https://github.com/example-lab/sharp-nets"
    footnote: str = "Code: "
    closing: str = ""  # extra HTML at the end of the last section
    outline: bool = True


def _paragraphs(n: int, topic: str) -> str:
    """Prose that does not repeat line for line (repeated lines would look like a grid)."""
    out = []
    for i in range(n):
        seed = sum(map(ord, topic)) + 7 * i
        picked = [SENTENCES[(seed + k * (i + 3)) % len(SENTENCES)] for k in range(8 + seed % 5)]
        out.append(f"<p>{topic}, part {i + 1}: {' '.join(picked)}</p>")
    return "".join(out)


def _columns():
    inner_w = (PAGE_W - 2 * MARGIN - GUTTER) / 2
    left = (MARGIN, MARGIN, MARGIN + inner_w, PAGE_H - MARGIN - 30)
    right = (MARGIN + inner_w + GUTTER, MARGIN, PAGE_W - MARGIN, PAGE_H - MARGIN - 30)
    return [left, right]


def _place(writer, story, rects, page_numbers):
    """Flow ``story`` through ``rects`` page after page; record the pages used."""
    import pymupdf

    more = True
    while more:
        device = writer.begin_page(pymupdf.Rect(0, 0, PAGE_W, PAGE_H))
        page_numbers.append(len(page_numbers) + 1)
        for rect in rects:
            more, _ = story.place(pymupdf.Rect(rect))
            story.draw(device)
            if not more:
                break
        writer.end_page()


def render(paper: Paper) -> bytes:
    """The paper as PDF bytes: body text in two columns, each table full width on its own
    pages, an outline of the sections, and a footnote link to the code on page 1."""
    import io

    import pymupdf

    buffer = io.BytesIO()
    writer = pymupdf.DocumentWriter(buffer)
    pages: list[int] = []
    toc = []
    full = [(MARGIN, MARGIN, PAGE_W - MARGIN, PAGE_H - MARGIN)]
    head = (f"<h1>{paper.title}</h1><p style='text-align:center'>{paper.authors}</p>"
            f"<h2>Abstract</h2><p>{paper.abstract}</p>")
    for index, section in enumerate(paper.sections):
        toc.append([1, section.title, len(pages) + 1])
        html = (head if index == 0 else "") + f"<h2>{section.title}</h2>" + _paragraphs(2, section.title)
        if section.inline:
            html += "".join(t.html() for t in section.tables)
        html += _paragraphs(section.paragraphs - 2, section.title)
        if index == len(paper.sections) - 1:
            html += paper.closing
        _place(writer, pymupdf.Story(html, user_css=CSS), _columns(), pages)
        for table in [] if section.inline else section.tables:
            _place(writer, pymupdf.Story(table.html(), user_css=CSS), full, pages)
    writer.close()
    doc = pymupdf.open("pdf", buffer.getvalue())
    if paper.outline:
        doc.set_toc(toc)
    first = doc[0]
    y = PAGE_H - MARGIN - 10
    first.draw_line((MARGIN, y - 12), (MARGIN + 120, y - 12), width=0.5)
    first.insert_text((MARGIN, y), f"1 {paper.footnote}{paper.code_url}", fontsize=7)
    width = pymupdf.get_text_length(f"1 {paper.footnote}{paper.code_url}", fontsize=7)
    first.insert_link({"kind": pymupdf.LINK_URI, "from": pymupdf.Rect(MARGIN, y - 8, MARGIN + width, y + 2),
                       "uri": paper.code_url})
    first.insert_link({"kind": pymupdf.LINK_URI, "from": pymupdf.Rect(MARGIN, MARGIN, MARGIN + 50, MARGIN + 10),
                       "uri": "https://example.org/related-work-survey"})
    data = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return data


def result_rows(methods: list[str], seed: int, n_cols: int = 3) -> list[list[str]]:
    return [[m] + [f"{50 + (seed * 7 + i * 3 + j) % 40}.{(i + j) % 10}" for j in range(n_cols)]
            for i, m in enumerate(methods)]


def sample_paper() -> Paper:
    """The test paper: three ordinary tables and one that spans three pages."""
    long_rows = [[f"run-{i:03d}", f"{0.1 * (i % 9):.1f}", f"{60 + i % 30}.{i % 10}", f"{i * 3}"] for i in range(110)]
    return Paper(
        title="Sharp Nets: Sharpness-Aware Training Revisited",
        authors="Ada Lovelace, Alan Turing",
        abstract="We revisit sharpness-aware minimisation and show consistent gains on CIFAR-10 and ImageNet.",
        sections=[
            Section("1 Introduction", 6),
            Section("2 Method", 4, [Table(1, "Hyper-parameters used in all runs.", ["Name", "Value", "Range"],
                                          [["learning rate", "0.1", "0.01-1"], ["batch size", "128", "32-512"],
                                           ["weight decay", "5e-4", "0-1e-3"]])]),
            Section("3 Experiments", 4, [
                Table(2, "Main results on CIFAR-10 and ImageNet.", ["Method", "CIFAR-10 Acc. (%)", "ImageNet Top-1 Acc. (%)", "Params (M)"],
                      [["ResNet-18", "95.1", "69.8", "11.7"], ["SAM", "96.3", "70.9", "11.7"], ["Ours", "97.2", "71.6", "11.7"]]),
                Table(3, "Full sweep over learning rates (all runs).", ["Run", "LR", "Accuracy (%)", "Step"], long_rows),
            ]),
            Section("4 Ablations", 3, [Table(4, "Ablation of the components; error rate (%).", ["Variant", "Error (%)", "Time (h)"],
                                             [["full", "2.8", "5.0"], ["no warmup", "3.4", "4.9"], ["no SAM", "3.9", "3.1"]])]),
            Section("5 Conclusion", 3, [Table(5, "Translation quality (BLEU) on WMT14 En-De.", ["Model", "BLEU", "chrF"],
                                              [["Transformer", "27.3", "55.1"], ["Ours", "29.8", "57.0"],
                                               ["Ours-large", "30.4", "57.9"]], booktabs=True)], inline=True),
            Section("A Appendix", 2, [Table(6, "Per-seed results, printed without rules.", ["Seed", "Model", "Accuracy (%)", "Loss"],
                                            [[str(i), ["ResNet-18", "SAM", "Ours"][i % 3], f"{90 + i % 7}.{i % 10}", f"0.{i:03d}"]
                                             for i in range(70)], plain=True)]),
        ],
        closing="<p>Baselines: https://github.com/other-lab/baseline-code and the checkpoints at "
                "https://huggingface.co/example-lab/sharp-nets-base and https://example.org/unrelated.</p>",
    )


def benchmark_paper() -> Paper:
    """About 35 pages: two-column text, ten tables, one of them spanning eight pages."""
    methods = ["ResNet-50", "ViT-B/16", "ConvNeXt-T", "SAM", "ASAM", "GSAM", "Ours"]
    metric_sets = [["Top-1 Acc. (%)", "Top-5 Acc. (%)", "Params (M)"], ["BLEU", "chrF", "Latency (ms)"],
                   ["mAP", "AP50", "AP75"]]
    short_tables = [Table(n, f"Results on benchmark {n}.", ["Method"] + metric_sets[n % 3], result_rows(methods, n))
                    for n in range(1, 10)]
    sweep = Table(10, "Every run of the learning-rate sweep.", ["Run", "LR", "Accuracy (%)", "Step"],
                  [[f"run-{i:03d}", f"{0.1 * (i % 9):.1f}", f"{60 + i % 30}.{i % 10}", f"{i * 3}"] for i in range(340)])
    sections = [Section(f"{n} Section {n}", 18 if n > 1 else 9, short_tables[n - 1:n], inline=True) for n in range(1, 10)]
    sections.append(Section("10 Sweep", 6, [sweep]))
    return Paper(title="A Benchmark Paper", authors="Grace Hopper", abstract="Synthetic paper for benchmarks.",
                 sections=sections)


# ---------------------------------------------------------------- the shapes real papers take
#
# Drawn directly (text at positions, rules as lines), the way LaTeX prints: no space
# characters between the cells of a row, booktabs rules, a side stamp set vertically.

BODY = "tiro"  # Times
BOLD = "tibo"
STAMP = "arXiv:2106.01234v1  [cs.LG]  1 Jun 2021"
HARD_TITLE = "Shapes of Real Tables: A Stress Test for Extraction"
HARD_ABSTRACT = ("We print tables the way published papers do. A plot stands beside a table, captions sit below "
                 "their tables, and long tables continue over pages. A method that reads them must keep every "
                 "number where the authors put it.")
OWN_CODE = "https://github.com/shapes-lab/real-tables"
CITED_CODE = "https://github.com/other-lab/baseline-code"


@dataclass
class DrawnTable:
    caption: str
    header: list[list[str]]  # header lines; a cell "" leaves the place empty
    rows: list[list[str]]
    widths: list[float]  # column widths in points
    bold: set = field(default_factory=set)  # (row, column) set in bold
    caption_below: bool = False
    spans: dict = field(default_factory=dict)  # (header line, column) -> columns a group title covers

    def merged_header(self) -> list[str]:
        """What the extraction should give as the header: the lines joined per column,
        a group title given to every column under it."""
        out = [[] for _ in self.widths]
        for line_no, line in enumerate(self.header):
            for c, text in enumerate(line):
                if text:
                    for covered in range(c, c + self.spans.get((line_no, c), 1)):
                        out[covered].append(text)
        return [" ".join(parts) for parts in out]


def _draw_rows(page, x: float, y: float, table: DrawnTable, lines: list[list[str]], bold_rows: dict | None = None,
               size: float = 8.0) -> float:
    """Each line's cells left-aligned in their columns (no spaces between cells); returns the
    y below the last line."""
    import pymupdf

    for r, line in enumerate(lines):
        y += size * 1.35
        for c, text in enumerate(line):
            if not text:
                continue
            font = BOLD if bold_rows is not None and (r, c) in bold_rows else BODY
            left = x + sum(table.widths[:c])
            span = table.spans.get((r, c), 1) if bold_rows is None else 1
            if c == 0:
                left += 2  # the first column left-aligned, the others centred, as papers set them
            else:  # a group title is centred over all the columns it spans (\multicolumn)
                width = sum(table.widths[c:c + span])
                left += (width - pymupdf.get_text_length(text, fontname=font, fontsize=size)) / 2
            page.insert_text((left, y), text, fontname=font, fontsize=size)
    return y + size * 0.45


def draw_table(page, x: float, y: float, table: DrawnTable, size: float = 8.0) -> tuple[float, tuple]:
    """A booktabs table (top rule, rule under the header, bottom rule) with its caption
    above or below; returns (y below it all, the table's box without the caption)."""
    width = sum(table.widths)
    if not table.caption_below:
        y = _caption(page, x, y, width, table.caption) + 4
    top = y
    page.draw_line((x, y), (x + width, y), width=0.8)
    y = _draw_rows(page, x, y, table, table.header, size=size)
    page.draw_line((x, y), (x + width, y), width=0.5)
    y = _draw_rows(page, x, y, table, table.rows, table.bold, size=size)
    page.draw_line((x, y), (x + width, y), width=0.8)
    box = (x, top, x + width, y)
    if table.caption_below:  # LaTeX: a small skip above a caption below, a float separation after it
        return _caption(page, x, y + 6, width, table.caption) + 20, box
    return y + 14, box


def _caption(page, x: float, y: float, width: float, text: str) -> float:
    import pymupdf

    rect = pymupdf.Rect(x, y, x + width, y + 40)
    page.insert_textbox(rect, text, fontname=BODY, fontsize=8.5)
    lines = max(1, int(pymupdf.get_text_length(text, fontname=BODY, fontsize=8.5) // (width - 4)) + 1)
    return y + lines * 8.5 * 1.25


def _prose(page, x: float, y: float, width: float, lines: int, topic: str) -> float:
    """Justified-looking prose: lines that fill the column and never repeat one layout."""
    import pymupdf

    words = [w for s in SENTENCES for w in s.split()]
    k = sum(map(ord, topic))
    for _ in range(lines):
        line, used = [], 0.0
        while True:
            word = words[k % len(words)]
            k += 1
            step = pymupdf.get_text_length(word + " ", fontname=BODY, fontsize=9)
            if used + step > width:
                break
            line.append(word)
            used += step
        y += 11
        page.insert_text((x, y), " ".join(line), fontname=BODY, fontsize=9)
    return y


def _plot(page, box: tuple) -> None:
    """A line plot: axes, grid lines, ticks with labels and two curves (no caption words)."""
    x0, y0, x1, y1 = box
    page.draw_line((x0, y1), (x1, y1), width=0.8)
    page.draw_line((x0, y0), (x0, y1), width=0.8)
    for i in range(1, 5):
        gy = y1 - i * (y1 - y0) / 5
        page.draw_line((x0, gy), (x1, gy), width=0.3, color=(0.7, 0.7, 0.7))
        page.insert_text((x0 - 14, gy + 3), f"{20 * i}", fontname=BODY, fontsize=6)
        gx = x0 + i * (x1 - x0) / 5
        page.draw_line((gx, y1), (gx, y1 + 3), width=0.5)
        page.insert_text((gx - 4, y1 + 10), f"{i * 10}", fontname=BODY, fontsize=6)
    for shift, colour in ((0, (0.8, 0.1, 0.1)), (15, (0.1, 0.1, 0.8))):
        points = [(x0 + t * (x1 - x0) / 20, y1 - (y1 - y0) * (1 - 0.9 ** t) * 0.8 - shift) for t in range(21)]
        page.draw_polyline(points, color=colour, width=1)
    page.insert_text((x0 + 40, y1 + 22), "epochs", fontname=BODY, fontsize=7)


MAIN = DrawnTable(
    "Table 1: Top-1 error (%) on ImageNet; lower is better. Best in bold.",
    header=[["", "Top-1", "Top-5"], ["Method", "err. (%)", "err. (%)"]],
    rows=[["VGG-16", "28.07", "9.33"], ["GoogLeNet", "-", "9.15"], ["PReLU-net", "24.27", "7.38"],
          ["No clipping or penalty", "26.10", "8.20"], ["Clipping", "25.40", "7.90"], ["ResNet-152 (ours)", "19.38", "4.49"]],
    widths=[82, 42, 42], bold={(5, 1), (5, 2)})
BELOW_A = DrawnTable("Table 2: Accuracy (%) on CIFAR-10 with the caption below the table.",
                     header=[["Model", "Acc. (%)", "Params (M)"]],
                     rows=[["Baseline", "91.2", "11.2"], ["Wide", "93.4", "36.5"], ["Proposed", "95.1", "11.4"]],
                     widths=[110, 60, 60], caption_below=True)
BELOW_B = DrawnTable("Table 3: Perplexity on WikiText-103, the caption again below its table.",
                     header=[["Model", "PPL", "Params (M)"]],
                     rows=[["LSTM", "48.7", "151"], ["Transformer-XL", "24.0", "257"], ["Ours", "22.1", "250"]],
                     widths=[110, 60, 60], caption_below=True)
GROUPED = DrawnTable("Table 4: Results on two datasets; a group title spans its columns.",
                     header=[["", "CIFAR-10", "", "CIFAR-100", ""], ["Method", "Acc.", "Err.", "Acc.", "Err."]],
                     rows=[["SGD", "95.1", "4.9", "77.3", "22.7"], ["SAM", "96.3", "3.7", "80.2", "19.8"],
                           ["Ours", "97.0", "3.0", "82.5", "17.5"]],
                     widths=[90, 50, 50, 50, 50], spans={(0, 1): 2, (0, 3): 2})
TALL = DrawnTable("Table 5: Every configuration of the sweep (a tall three-rule table).",
                  header=[["Config", "LR", "Accuracy (%)", "Loss"]],
                  rows=[[f"cfg-{i:02d}", f"{0.001 * (i + 1):.3f}", f"{70 + (i * 7) % 25}.{i % 10}", f"0.{(i * 37) % 1000:03d}"]
                        for i in range(48)],
                  widths=[110, 80, 90, 80])
LONG_ROWS = [[f"task-{i:03d}", f"{60 + (i * 3) % 35}.{(i * 7) % 10}", f"{1 + i % 5}"] for i in range(120)]
LONG = DrawnTable("Table 6: Per-task accuracy of the method over all tasks (continues over pages).",
                  header=[["Task", "Accuracy", "Rank"]], rows=LONG_ROWS, widths=[150, 90, 90])
CONTINUED_ROW = "Continued on next page"
IMAGE_CAPTION = "Table 7: Results of the user study (printed as a picture)."


def hard_paper() -> bytes:
    """A paper with every shape that broke table extraction on real papers: a plot beside
    a table, captions below their tables, cells without spaces between them, a two-line
    header and a group title, a tall three-rule table, a table continued over pages with
    its header repeated and "continued" lines, a table that is a picture, an arXiv side
    stamp, a URL broken at a line end and a cited repository before the paper's own."""
    import pymupdf

    doc = pymupdf.open()
    doc.set_metadata({"title": "main.dvi", "author": "Ada Lovelace, Alan Turing"})
    left, right, col_w = MARGIN, PAGE_W / 2 + GUTTER / 2, PAGE_W / 2 - MARGIN - GUTTER / 2

    page = doc.new_page(width=PAGE_W, height=PAGE_H)  # 1: title, abstract, plot beside a table
    page.insert_text((22, 560), STAMP, fontname="helv", fontsize=11, rotate=90, color=(0.5, 0.5, 0.5))
    page.insert_text((MARGIN, 30), "Preprint. Under review.", fontname=BODY, fontsize=8)
    page.insert_textbox(pymupdf.Rect(MARGIN, 60, PAGE_W - MARGIN, 110), HARD_TITLE, fontname="tibo", fontsize=16,
                        align=pymupdf.TEXT_ALIGN_CENTER)
    page.insert_textbox(pymupdf.Rect(MARGIN, 112, PAGE_W - MARGIN, 126), "Ada Lovelace  Alan Turing  (Shapes Lab)",
                        fontname=BODY, fontsize=10, align=pymupdf.TEXT_ALIGN_CENTER)
    page.insert_text((PAGE_W / 2 - 20, 150), "Abstract", fontname="tibo", fontsize=11)
    abstract_lines = ["We print tables the way published papers do. A plot stands beside a table,",
                      "captions sit below their tables, and long tables continue over pages.",
                      "A method that reads them must keep every number where the authors put it."]
    y = 152
    for line in abstract_lines:
        y += 11
        page.insert_text((MARGIN + 40, y), line, fontname=BODY, fontsize=9)
    page.insert_text((left, y + 26), "1", fontname="tibo", fontsize=11)
    page.insert_text((left, y + 40), "Introduction", fontname="tibo", fontsize=11)
    y = _prose(page, left, y + 44, col_w, 8, "intro")
    page.insert_text((left, y + 11), "We build on the implementation at", fontname=BODY, fontsize=9)
    page.insert_text((left, y + 22), CITED_CODE + ".", fontname=BODY, fontsize=9)
    page.insert_text((left, y + 33), "Our code is available at https://github.com/", fontname=BODY, fontsize=9)
    page.insert_text((left, y + 44), OWN_CODE.removeprefix("https://github.com/") + ".", fontname=BODY, fontsize=9)
    _plot(page, (left + 20, 420, left + col_w - 10, 560))
    page.insert_textbox(pymupdf.Rect(left, 585, left + col_w, 610), "Figure 1: Training curves of two runs.",
                        fontname=BODY, fontsize=8.5)
    draw_table(page, right, 420, MAIN)
    _prose(page, right, 560, col_w, 8, "results")

    page = doc.new_page(width=PAGE_W, height=PAGE_H)  # 2: captions below, a grouped header
    y, _ = draw_table(page, left, 70, BELOW_A)
    y, _ = draw_table(page, left, y, BELOW_B)
    _prose(page, left, y, col_w, 20, "below")
    y, _ = draw_table(page, right, 70, GROUPED)
    _prose(page, right, y, col_w, 20, "grouped")

    page = doc.new_page(width=PAGE_W, height=PAGE_H)  # 3: a tall three-rule table
    _prose(page, left, 60, PAGE_W - 2 * MARGIN, 3, "tall")
    draw_table(page, 120, 110, TALL)

    per_page = 45  # 4-6: a long table, its header repeated, "continued" at the foot of each part
    chunks = [LONG.rows[i:i + per_page] for i in range(0, len(LONG.rows), per_page)]
    for n, chunk in enumerate(chunks):
        page = doc.new_page(width=PAGE_W, height=PAGE_H)
        part = DrawnTable(LONG.caption if n == 0 else "", LONG.header, chunk, LONG.widths)
        x, y = 140, 60
        if n == 0:
            y = _caption(page, x, y, sum(part.widths), part.caption) + 4
        page.draw_line((x, y), (x + sum(part.widths), y), width=0.8)
        y = _draw_rows(page, x, y, part, part.header)
        page.draw_line((x, y), (x + sum(part.widths), y), width=0.5)
        y = _draw_rows(page, x, y, part, part.rows)
        if n < len(chunks) - 1:
            y = _draw_rows(page, x, y, part, [[CONTINUED_ROW, "", ""]])
        page.draw_line((x, y), (x + sum(part.widths), y), width=0.8)

    page = doc.new_page(width=PAGE_W, height=PAGE_H)  # 7: a table printed as a picture
    _prose(page, left, 60, PAGE_W - 2 * MARGIN, 4, "picture")
    page.insert_text((left, 130), IMAGE_CAPTION, fontname=BODY, fontsize=8.5)
    picture = pymupdf.open()
    sheet = picture.new_page(width=300, height=90)
    draw_table(sheet, 10, 5, DrawnTable("", [["Group", "Score"]], [["A", "4.1"], ["B", "3.7"]], [140, 140]))
    page.insert_image(pymupdf.Rect(left, 140, left + 300, 230), pixmap=sheet.get_pixmap(dpi=110))
    _prose(page, left, 250, PAGE_W - 2 * MARGIN, 6, "after")
    data = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return data


# ---------------------------------------------------------------- several tables under one caption
#
# Three more shapes from real papers: sub-tables side by side and stacked under one caption
# with "(a)", "(b)" sub-captions below them; methods as columns with a second header row
# halfway down; a header of three levels (method over year over metric) with columns of
# numbers set closer than a space between words.

SUB_CAPTION = "Table 1: Retrieval on a video benchmark; (a) and (c) train on different splits."
SUB_HEADER = [["Method", "Data", "R@1", "R@5", "MdR"]]
SUB_A = DrawnTable("(a) Training on split A", SUB_HEADER,
                   [["Base-LSTM", "M", "4.2", "12.9", "55"], ["Fusion", "M", "10.2", "31.2", "13"],
                    ["Pretrained", "H+M", "14.9", "40.2", "9"], ["Ours-mean", "W+M", "42.1", "71.9", "2"],
                    ["Ours-seq", "W+M", "41.7", "68.8", "2"]], [62, 26, 24, 24, 22])
SUB_B = DrawnTable("(b) Zero-shot", SUB_HEADER, [["Contrast", "H", "9.9", "24.0", "29"], ["Straight", "W", "31.2", "53.7", "4"]],
                   [62, 26, 24, 24, 22])
SUB_C = DrawnTable("(c) Training on split B", SUB_HEADER,
                   [["Experts", "M", "20.9", "48.8", "6"], ["Multi-modal", "H+M", "26.6", "57.1", "4"],
                    ["Ours-mean", "W+M", "43.1", "70.4", "2"], ["Ours-seq", "W+M", "42.5", "70.8", "2"]],
                   [62, 26, 24, 24, 22])
REHEADER_CAPTION = "Table 2: Quantile losses on two datasets; lower is better. Methods as columns."
REHEADER_BLOCKS = [  # (header, rows): the second header row starts halfway down
    (["", "ARIMA", "ETS", "TRMF", "DeepAR"],
     [["Electricity", "0.154 (+180%)", "0.102 (+85%)", "0.084 (+53%)", "0.075 (+36%)"],
      ["Traffic", "0.223 (+135%)", "0.236 (+148%)", "0.186 (+96%)", "0.161 (+69%)"]]),
    (["", "ConvTrans", "Seq2Seq", "MQRNN", "TFT"],
     [["Electricity", "0.059 (+7%)", "0.067 (+22%)", "0.077 (+40%)", "0.055"],
      ["Traffic", "0.122 (+28%)", "0.105 (+11%)", "0.117 (+23%)", "0.095"]]),
]
REHEADER_SUB = "(a) P50 losses on simpler datasets."
LEVELS_CAPTION = "Table 3: Forecasting error against recent methods on two datasets; the best in bold."
LEVELS_METHODS = [("BEAT", "Ours"), ("WPMixer", "2025"), ("TimeMixer", "2024"), ("iTransformer", "2024")]
LEVELS_ROWS = [[dataset, str(horizon)] + [f"0.{(k * 37 + len(dataset) * 11 + horizon) % 500 + 100:03d}" for k in range(8)]
               for dataset in ("Weather", "ETTh1") for horizon in (96, 192, 336, 720)]
ABOVE_CAPTION = "Table 4: Results on two datasets, a sub-table each with its sub-caption above it."
ABOVE = [DrawnTable("(a) CIFAR-10", [["Method", "Acc. (%)", "Params (M)"]],
                    [["SGD", "95.1", "11.2"], ["SAM", "96.3", "11.2"], ["Ours", "97.0", "11.4"]], [90, 60, 60]),
         DrawnTable("(b) CIFAR-100", [["Method", "Acc. (%)", "Params (M)"]],
                    [["SGD", "77.3", "11.2"], ["SAM", "80.2", "11.2"], ["Ours", "82.5", "11.4"]], [90, 60, 60])]
LEVELS_HEADER = ["Methods Metric", ""] + [f"{m} {y} {metric}" for m, y in LEVELS_METHODS for metric in ("MSE", "MAE")]


def _rule(page, x0: float, x1: float, y: float, width: float = 0.5) -> None:
    page.draw_line((x0, y), (x1, y), width=width)


def _cells(page, x: float, y: float, widths: list[float], cells: list[str], size: float = 8.0, font: str = BODY) -> None:
    """One line: the first cell left-aligned, the others centred in their columns."""
    import pymupdf

    for c, text in enumerate(cells):
        left = x + sum(widths[:c])
        if c == 0:
            left += 2
        else:
            left += (widths[c] - pymupdf.get_text_length(text, fontname=font, fontsize=size)) / 2
        if text:
            page.insert_text((left, y), text, fontname=font, fontsize=size)


def _booktabs(page, x: float, y: float, table: DrawnTable) -> float:
    """A table between booktabs rules (top, mid under the header, bottom); returns the y below."""
    width = sum(table.widths)
    _rule(page, x, x + width, y, 0.8)
    y = _draw_rows(page, x, y, table, table.header)
    _rule(page, x, x + width, y)
    y = _draw_rows(page, x, y, table, table.rows)
    _rule(page, x, x + width, y, 0.8)
    return y


def _sub_table(page, x: float, y: float, table: DrawnTable) -> float:
    """A booktabs table with its sub-caption centred under it; returns the y below."""
    import pymupdf

    width = sum(table.widths)
    y = _booktabs(page, x, y, table) + 12
    label_w = pymupdf.get_text_length(table.caption, fontname=BODY, fontsize=8)
    page.insert_text((x + (width - label_w) / 2, y), table.caption, fontname=BODY, fontsize=8)
    return y + 10


def subtables_paper() -> bytes:
    """Page 1: sub-tables (a) beside (b) over (c) under one caption below them all. Page 2: a
    table of methods as columns whose second header row starts halfway down, with its
    caption above and a sub-caption below. Page 3: a header of three levels (method, year,
    metric) over columns of numbers closer than a space, datasets as row groups. Page 4: two
    stacked sub-tables with their sub-captions above them, naming the dataset."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    page.insert_textbox(pymupdf.Rect(MARGIN, 40, PAGE_W - MARGIN, 70), "Tables Under One Caption", fontname="tibo",
                        fontsize=16, align=pymupdf.TEXT_ALIGN_CENTER)
    left_x, right_x = 70, 70 + sum(SUB_A.widths) + 22
    y_left = _sub_table(page, left_x, 110, SUB_A)
    y_right = _sub_table(page, right_x, 84, SUB_B)
    y_right = _sub_table(page, right_x, y_right + 6, SUB_C)
    y = _caption(page, 70, max(y_left, y_right) + 8, PAGE_W - 140, SUB_CAPTION)
    _prose(page, MARGIN, y + 20, PAGE_W - 2 * MARGIN, 24, "subtables")

    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    _prose(page, MARGIN, 50, PAGE_W - 2 * MARGIN, 6, "reheader")
    widths = [80, 90, 90, 90, 90]
    x, width = 86, sum(widths)
    y = _caption(page, x, 140, width, REHEADER_CAPTION) + 6
    _rule(page, x, x + width, y, 0.8)
    for n, (header, rows) in enumerate(REHEADER_BLOCKS):
        y += 12
        _cells(page, x, y, widths, header, font=BOLD)
        y += 4
        _rule(page, x, x + width, y)
        for row in rows:
            y += 11
            _cells(page, x, y, widths, row)
        y += 4
    _rule(page, x, x + width, y, 0.8)
    y += 12
    label_w = pymupdf.get_text_length(REHEADER_SUB, fontname=BODY, fontsize=8)
    page.insert_text((x + (width - label_w) / 2, y), REHEADER_SUB, fontname=BODY, fontsize=8)
    _prose(page, MARGIN, y + 30, PAGE_W - 2 * MARGIN, 20, "after reheader")

    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    _prose(page, MARGIN, 50, PAGE_W - 2 * MARGIN, 4, "levels")
    widths = [48, 22] + [22.5] * 8  # numbers set about a space apart, as dense tables are
    x, width = 100, sum(widths)
    y = 120
    _rule(page, x, x + width, y, 0.8)
    y += 10
    for k, (method, _) in enumerate(LEVELS_METHODS):
        _cells(page, x + sum(widths[:2 + 2 * k]), y, [0, 45], ["", method])
    page.insert_text((x + 2, y + 5), "Methods", fontname=BODY, fontsize=8)
    _rule(page, x + sum(widths[:2]), x + width, y + 3)  # one rule under all the method names
    y += 11
    for k, (_, year) in enumerate(LEVELS_METHODS):
        _cells(page, x + sum(widths[:2 + 2 * k]), y, [0, 45], ["", year])
    _rule(page, x, x + width, y + 3)
    y += 11
    _cells(page, x, y, widths, ["Metric", ""] + ["MSE", "MAE"] * 4)
    _rule(page, x, x + width, y + 3)
    _rule(page, x, x + width, y + 5)
    y += 5
    for r, row in enumerate(LEVELS_ROWS):
        y += 11
        _cells(page, x, y, widths, ["" if r % 4 != 2 else row[0]] + row[1:])
        if r % 4 == 3:
            y += 3
            _rule(page, x, x + width, y)
    y = _caption(page, x - 20, y + 14, width + 40, LEVELS_CAPTION)
    _prose(page, MARGIN, y + 20, PAGE_W - 2 * MARGIN, 20, "after levels")

    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    _prose(page, MARGIN, 50, PAGE_W - 2 * MARGIN, 5, "above")
    x, width = 150, sum(ABOVE[0].widths)
    y = _caption(page, x, 130, width, ABOVE_CAPTION) + 6
    for table in ABOVE:
        label_w = pymupdf.get_text_length(table.caption, fontname=BODY, fontsize=8)
        page.insert_text((x + (width - label_w) / 2, y + 10), table.caption, fontname=BODY, fontsize=8)
        y = _booktabs(page, x, y + 13, table) + 8
    _prose(page, MARGIN, y + 20, PAGE_W - 2 * MARGIN, 20, "after above")
    data = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return data


APPENDIX = DrawnTable("Table A1: Per-task accuracy in the appendix (continues on the next page).",
                      header=[["Task", "Accuracy", "Rank"]], rows=LONG_ROWS[:40], widths=[150, 90, 90])


def after_table_paper() -> bytes:
    """Page 1: a table, then prose; page 2: prose only (no table continues there); page 3:
    an appendix table ("Table A1") whose rows go on at the top of page 4 under its header
    repeated, without a caption."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    y, _ = draw_table(page, MARGIN, 70, BELOW_A)
    _prose(page, MARGIN, y, PAGE_W - 2 * MARGIN, 40, "first")
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    _prose(page, MARGIN, 50, PAGE_W - 2 * MARGIN, 60, "second")
    for n, rows in enumerate((APPENDIX.rows[:25], APPENDIX.rows[25:])):
        page = doc.new_page(width=PAGE_W, height=PAGE_H)
        y = 60
        if n == 0:
            y = _prose(page, MARGIN, y, PAGE_W - 2 * MARGIN, 20, "appendix") + 20
        draw_table(page, 140, y, DrawnTable(APPENDIX.caption if n == 0 else "", APPENDIX.header, rows, APPENDIX.widths))
    data = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return data


THOUSANDS_CAPTION = "Table 1: Dataset sizes; counts grouped in thousands, set right-aligned."
THOUSANDS_ROWS = [["ImageNet", "1 281 167", "50 000", "0.84"], ["Places365", "1 803 460", "36 500", "0.91"],
                  ["CIFAR-10", "50 000", "10 000", "0.95"], ["iNat-2018", "437 513", "24 426", "0.77"]]


def thousands_paper() -> bytes:
    """A table whose counts are grouped in thousands by spaces, right-aligned, so the
    spaces line up from row to row as the gaps between columns do."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    _prose(page, MARGIN, 50, PAGE_W - 2 * MARGIN, 5, "thousands")
    widths, x = [90, 70, 60, 50], 150
    y = _caption(page, x, 130, sum(widths), THOUSANDS_CAPTION) + 6
    _rule(page, x, x + sum(widths), y, 0.8)
    for r, row in enumerate([["Dataset", "Train", "Val", "Top-1"]] + THOUSANDS_ROWS):
        y += 11
        for c, text in enumerate(row):
            right = x + sum(widths[:c + 1]) - 4
            left = x + 2 if c == 0 else right - pymupdf.get_text_length(text, fontname=BODY, fontsize=8)
            page.insert_text((left, y), text, fontname=BODY, fontsize=8)
        if r == 0:
            _rule(page, x, x + sum(widths), y + 4)
            y += 4
    _rule(page, x, x + sum(widths), y + 4, 0.8)
    _prose(page, MARGIN, y + 30, PAGE_W - 2 * MARGIN, 20, "after thousands")
    data = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return data


HALVES_CAPTION = "Table 2: Accuracy of every model, the list set in two halves side by side."
HALVES = [[["ResNet-18", "69.8"], ["ViT-S", "79.9"]], [["ResNet-50", "76.1"], ["ViT-B", "81.8"]],
          [["ResNet-101", "77.4"], ["ViT-L", "85.2"]], [["ConvNeXt-T", "82.1"], ["", ""]]]


def halves_paper() -> bytes:
    """A long list printed in two halves side by side under one set of rules: the header
    "Model Acc. (%)" twice on one line."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    _prose(page, MARGIN, 50, PAGE_W - 2 * MARGIN, 5, "halves")
    widths, x = [90, 60, 90, 60], 150
    y = _caption(page, x, 130, sum(widths), HALVES_CAPTION) + 6
    _rule(page, x, x + sum(widths), y, 0.8)
    y += 11
    _cells(page, x, y, widths, ["Model", "Acc. (%)"])
    _cells(page, x + 150, y, widths[2:], ["Model", "Acc. (%)"])
    _rule(page, x, x + sum(widths), y + 4)
    y += 4
    for left, right in HALVES:
        y += 11
        _cells(page, x, y, widths, left)
        _cells(page, x + 150, y, widths[2:], right)
    _rule(page, x, x + sum(widths), y + 4, 0.8)
    _prose(page, MARGIN, y + 30, PAGE_W - 2 * MARGIN, 20, "after halves")
    data = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return data

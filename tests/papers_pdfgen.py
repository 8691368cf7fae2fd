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

"""Tables of a paper: find the pages that can hold one, extract there, stitch continuations.

Every page gets cheap tests only: a caption line, ruling lines (``get_cdrawings``), a grid
of text cells repeating one layout. Candidate pages are then read by the kind of table:
- ruled grid (vertical and horizontal rules): ``page.find_tables()`` clipped to the region
  the rules span (it costs a character extraction of whatever it looks at);
- horizontal rules only (booktabs): rows from the text lines between the rules, columns
  from the gaps in the body rows;
- no rules: from the caption down, while lines hold several cells and are not prose.
Cell text comes from the page's words. A table whose rows continue on the next page (same
columns, no caption of its own, at the top of the page) is stitched into one table.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

# "Table 3: ..." / "Table 3. ..." / "TABLE III" alone on its line; not "Table 3 shows ..."
CAPTION = re.compile(r"^\s*(Table|TABLE|Tab\.)\s+([0-9]+|[IVXLC]+)\s*([:.|]\s*(.*))?$")
MIN_RULE_LEN = 20.0
RULE_THICKNESS = 2.5
MIN_GRID_ROWS = 4
CLIP_MARGIN = 4.0


@dataclass
class Candidate:
    page: int  # 0-based
    clip: tuple[float, float, float, float] | None  # region the rules span; None: whole page
    vertical_rules: bool
    horizontal: list = field(default_factory=list, repr=False)  # the rules, for booktabs tables


@dataclass
class Part:
    page: int
    bbox: tuple[float, float, float, float]
    columns: list[float]  # left x of each column
    rows: list[list[str]]
    caption: str | None
    row_height: float
    continuation_only: bool = False  # found without caption or rules: kept only to extend a table


@dataclass
class Table:
    caption: str | None
    pages: list[int]  # 1-based
    header: list[str]
    rows: list[list[str]]
    bbox: tuple[float, float, float, float]
    columns: list[float] = field(repr=False, default_factory=list)
    row_height: float = field(repr=False, default=0.0)

    def as_dict(self, number: int) -> dict:
        label = None
        if self.caption and (m := CAPTION.match(self.caption)):
            label = f"Table {m.group(2)}"
        return {"id": f"t{number}", "label": label, "caption": self.caption, "pages": self.pages,
                "header": self.header, "rows": self.rows, "bbox": [round(v, 1) for v in self.bbox]}


def caption_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if CAPTION.match(line) and len(line.strip()) > 8]


def _rules(page):
    """Horizontal and vertical ruling segments as (x0, y0, x1, y1)."""
    horizontal, vertical = [], []
    for path in page.get_cdrawings():
        for item in path["items"]:
            if item[0] == "l":
                (x0, y0), (x1, y1) = item[1], item[2]
            elif item[0] == "re":
                x0, y0, x1, y1 = item[1]
            else:
                continue
            x0, x1 = sorted((x0, x1))
            y0, y1 = sorted((y0, y1))
            w, h = x1 - x0, y1 - y0
            if h <= RULE_THICKNESS and w >= MIN_RULE_LEN:
                horizontal.append((x0, y0, x1, y1))
            elif w <= RULE_THICKNESS and h >= 8:
                vertical.append((x0, y0, x1, y1))
            elif item[0] == "re" and w >= MIN_RULE_LEN and h >= 8 and path.get("type") != "f":
                horizontal += [(x0, y0, x1, y0), (x0, y1, x1, y1)]  # a stroked box: its edges rule
                vertical += [(x0, y0, x0, y1), (x1, y0, x1, y1)]
    return horizontal, vertical


def _grid_rows(words) -> int:
    """How many text rows share one column layout of three or more cells.

    A table row's cells are separate text lines side by side, and the rows of a table
    repeat the same cell positions (left edges, or centres for centred cells). Prose does
    not: even when MuPDF splits a widely justified line into words, the positions differ
    from line to line."""
    rows: dict[int, dict] = {}
    for w in words:
        cells = rows.setdefault(round(w[3] / 3), {})
        x0, x1 = cells.get((w[5], w[6]), (w[0], w[2]))
        cells[(w[5], w[6])] = (min(x0, w[0]), max(x1, w[2]))
    layouts: Counter = Counter()
    for cells in rows.values():
        if len(cells) >= 3:
            spans = sorted(cells.values())
            layouts[tuple(round(a / 6) for a, _ in spans)] += 1
            layouts[("centre",) + tuple(round((a + b) / 12) for a, b in spans)] += 1
    return max(layouts.values(), default=0)


def candidate(page, index: int, text: str, words) -> Candidate | None:
    """Whether page ``index`` can hold a table, and where: cheap tests only."""
    horizontal, vertical = _rules(page)
    has_caption = bool(caption_lines(text))
    if len(horizontal) >= 2:
        segs = horizontal + vertical
        clip = (min(s[0] for s in segs) - CLIP_MARGIN, min(s[1] for s in segs) - CLIP_MARGIN,
                max(s[2] for s in segs) + CLIP_MARGIN, max(s[3] for s in segs) + CLIP_MARGIN)
        return Candidate(index, clip, len(vertical) >= 2, horizontal)
    if has_caption or _grid_rows(words) >= MIN_GRID_ROWS:
        return Candidate(index, None, False)
    return None


class WordIndex:
    """The page's words sorted by vertical centre, so a row's words are found by bisection."""

    def __init__(self, words):
        self.words = sorted(words, key=lambda w: w[1] + w[3])
        self.keys = [(w[1] + w[3]) / 2 for w in self.words]

    def in_band(self, y0: float, y1: float) -> list:
        return self.words[bisect.bisect_left(self.keys, y0):bisect.bisect_right(self.keys, y1)]

    def row_texts(self, row) -> list[str]:
        band = self.in_band(row.bbox[1], row.bbox[3])
        return [_cell_text(band, cell) for cell in row.cells]


def _cell_text(words, cell) -> str:
    if cell is None:
        return ""
    x0, y0, x1, y1 = cell
    inside = [w for w in words if x0 <= (w[0] + w[2]) / 2 <= x1 and y0 <= (w[1] + w[3]) / 2 <= y1]
    inside.sort(key=lambda w: (w[5], w[6], w[7]))
    return " ".join(w[4] for w in inside)


def page_parts(page, cand: Candidate, words, text: str) -> list[Part]:
    """Extract the tables on one candidate page. Cell text comes from the page's words
    (MuPDF's per-cell character clustering splits numbers like 95.1 across lines)."""
    captions = _caption_positions(page, text)
    if not cand.vertical_rules:
        parts = _booktabs_parts(page, cand, words, captions) if cand.horizontal else []
        # rules that make no table (page header, footnote): a captioned table may be unruled
        return parts or _unruled_parts(page, cand, words, captions)
    found = page.find_tables(use_layout=False, clip=cand.clip).tables
    parts = []
    index = WordIndex(words) if found else None
    for table in found:
        rows = [index.row_texts(row) for row in table.rows]
        rows = [r for r in rows if any(r)]
        if len(rows) < 2 or len(rows[0]) < 2:
            continue
        bbox = tuple(table.bbox)
        caption = _caption_for(bbox, captions)
        heights = sorted(r.bbox[3] - r.bbox[1] for r in table.rows)
        columns = [c[0] for c in table.rows[0].cells if c is not None]
        parts.append(Part(cand.page, bbox, columns, rows, caption, heights[len(heights) // 2]))
    return parts


def _rule_groups(horizontal) -> list[list[tuple]]:
    """Horizontal rules merged per height, grouped into stacks of three or more
    (top, mid and bottom rule of a booktabs table)."""
    lines: list[list[float]] = []
    for x0, y0, x1, y1 in sorted(horizontal, key=lambda r: (r[1], r[0])):
        if lines and abs(lines[-1][1] - y0) <= 1.5 and x0 <= lines[-1][2] + 2:
            lines[-1][2] = max(lines[-1][2], x1)
        else:
            lines.append([x0, y0, x1])
    groups: list[list] = []
    for line in lines:
        last = groups[-1][-1] if groups else None
        if last and line[1] - last[1] < 250 and min(line[2], last[2]) - max(line[0], last[0]) > 0.5 * (last[2] - last[0]):
            groups[-1].append(line)
        else:
            groups.append([line])
    return [g for g in groups if len(g) >= 3]


def _grid_from_words(words) -> tuple[list[list[str]], list[float], float]:
    """Rows (by line height) and columns (by gaps in the words' horizontal coverage)."""
    words = sorted(words, key=lambda w: (w[1] + w[3]) / 2)
    height = sorted(w[3] - w[1] for w in words)[len(words) // 2]
    rows: list[list] = []
    for w in words:
        centre = (w[1] + w[3]) / 2
        if rows and centre - (rows[-1][0][1] + rows[-1][0][3]) / 2 < 0.6 * height:
            rows[-1].append(w)
        else:
            rows.append([w])
    # Columns come from the body rows: header cells are often centred over their column.
    body = [w for row in rows[1:] for w in row] or words
    spans: list[list[float]] = []
    for x0, _, x1, *_ in sorted(body, key=lambda w: w[0]):
        if spans and x0 - spans[-1][1] < 6:
            spans[-1][1] = max(spans[-1][1], x1)
        else:
            spans.append([x0, x1])
    table = []
    for row in rows:
        cells = [[] for _ in spans]
        for w in sorted(row, key=lambda w: w[0]):
            centre = (w[0] + w[2]) / 2
            nearest = min(range(len(spans)), key=lambda i: max(spans[i][0] - centre, centre - spans[i][1], 0))
            cells[nearest].append(w[4])
        table.append([" ".join(c) for c in cells])
    return table, [a for a, _ in spans], height * 1.3


def _booktabs_parts(page, cand: Candidate, words, captions) -> list[Part]:
    """Tables ruled by horizontal lines only: rows from text lines, columns from gaps."""
    parts = []
    for group in _rule_groups(cand.horizontal):
        x0, x1 = min(l[0] for l in group), max(l[2] for l in group)
        y0, y1 = group[0][1], group[-1][1]
        if y1 - y0 > 0.6 * page.rect.height:
            continue  # page header and footer rules, not a table
        inside = [w for w in words if x0 - 2 <= (w[0] + w[2]) / 2 <= x1 + 2 and y0 < (w[1] + w[3]) / 2 < y1]
        if len(inside) < 4:
            continue
        rows, columns, row_height = _grid_from_words(inside)
        bbox = (x0, y0, x1, y1)
        caption = _caption_for(bbox, captions)
        if len(rows) < 2 or len(columns) < 2 or (caption is None and len(columns) < 3):
            continue
        parts.append(Part(cand.page, bbox, columns, rows, caption, row_height))
    return parts


class Caption(NamedTuple):
    x0: float
    y0: float
    x1: float
    y1: float
    text: str


def _caption_positions(page, text: str) -> list[Caption]:
    import pymupdf

    if not caption_lines(text):
        return []
    out = []
    for block in page.get_text("blocks", flags=pymupdf.TEXTFLAGS_BLOCKS & ~pymupdf.TEXT_PRESERVE_LIGATURES):
        first = block[4].strip().split("\n")[0]
        if CAPTION.match(first):
            out.append(Caption(block[0], block[1], block[2], block[3], " ".join(block[4].split())))
    return out


def _caption_for(bbox, captions: list[Caption]) -> str | None:
    above = [c for c in captions if c.y1 <= bbox[1] + 2 and bbox[1] - c.y1 < 80]
    if above:
        return max(above, key=lambda c: c.y1).text
    below = [c for c in captions if c.y0 >= bbox[3] - 2 and c.y0 - bbox[3] < 40]
    return min(below, key=lambda c: c.y0).text if below else None


def _table_band(caption: Caption, words, width: float) -> tuple[float, float]:
    """The horizontal extent a captioned table can use: the full width when the caption
    crosses the middle or the first text block below it does; else the caption's column."""
    middle = width / 2
    if caption.x0 < middle < caption.x1:
        return 0.0, width
    below = [w for w in words if caption.y1 - 1 <= w[1] <= caption.y1 + 30]
    blocks = {w[5] for w in below if (w[2] <= middle) == (caption.x1 <= middle)}
    if any(w[5] in blocks and (w[2] <= middle) != (caption.x1 <= middle) for w in below):
        return 0.0, width  # one block on both sides of the middle: a full-width table
    return (0.0, middle) if caption.x1 <= middle else (middle, width)


def _unruled_parts(page, cand: Candidate, words, captions: list[Caption]) -> list[Part]:
    """Tables without any rules, found from their caption: the rows right below it (in
    the caption's text column, or full width when the caption crosses the middle) that
    hold two or more cells and are not lines of prose (prose fills its column)."""
    width = page.rect.width
    parts = []
    if not captions:
        # a page of aligned text without caption or rules: maybe the rest of an unruled
        # table from the previous page, starting at the top of this one
        captions = [Caption(0.0, 0.0, width, 0.0, "")]
    for caption in captions:
        x0, x1 = _table_band(caption, words, width)
        lines: dict[int, list] = {}
        for w in words:
            if x0 <= (w[0] + w[2]) / 2 <= x1 and w[1] >= caption.y1 - 1:
                lines.setdefault(round((w[1] + w[3]) / 6), []).append(w)
        band = max(x1 - x0 - 2 * 36, 1.0)  # the text column, less typical margins
        table_words = []
        for key in sorted(lines):
            line = lines[key]
            cells = len({(w[5], w[6]) for w in line})
            inked = sum(w[2] - w[0] for w in line)
            if cells < 2 or inked > 0.7 * band:
                break  # a line of prose (or a lone word): the table ended
            table_words += line
        if len({round((w[1] + w[3]) / 6) for w in table_words}) < 2:
            continue
        rows, columns, row_height = _grid_from_words(table_words)
        if len(rows) < 2 or len(columns) < 2:
            continue
        bbox = (min(w[0] for w in table_words), min(w[1] for w in table_words),
                max(w[2] for w in table_words), max(w[3] for w in table_words))
        parts.append(Part(cand.page, bbox, columns, rows, caption.text or None, row_height,
                          continuation_only=not caption.text))
    return parts


def _same_columns(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= 3 for x, y in zip(a, b))


def _recover_cut_row(words, part: Part) -> list[str] | None:
    """A row split from its top rule by the page break sits just above the detected
    table: rebuild it from the words there, one cell per column."""
    top = part.bbox[1]
    band = [w for w in words if w[3] <= top + 1 and w[1] >= top - 1.6 * part.row_height
            and part.bbox[0] <= w[0] and w[2] <= part.bbox[2]]
    if not band:
        return None
    edges = part.columns[1:] + [part.bbox[2]]
    cells = [[] for _ in part.columns]
    for w in sorted(band, key=lambda w: w[0]):
        column = next(i for i, edge in enumerate(edges) if (w[0] + w[2]) / 2 <= edge or i == len(edges) - 1)
        cells[column].append(w[4])
    return [" ".join(c) for c in cells]


def stitch(parts: list[Part], page_heights: dict[int, float], words_by_page: dict) -> list[Table]:
    tables: list[Table] = []
    last_on_page: dict[int, Part] = {}
    for part in parts:
        last_on_page[part.page] = part
    previous: Part | None = None
    for part in parts:
        prev_table = tables[-1] if tables else None
        continues = (
            prev_table is not None and previous is not None
            and part.caption is None
            and part.page == previous.page + 1
            and last_on_page.get(previous.page) is previous
            and part.bbox[1] < 0.25 * page_heights[part.page]
            and _same_columns(part.columns, prev_table.columns)
        )
        if continues:
            rows = part.rows
            if rows and rows[0] == prev_table.header:
                rows = rows[1:]  # a repeated header row
            # only a ruled table loses a row with its top rule at the page break
            cut = None if part.continuation_only else _recover_cut_row(words_by_page[part.page], part)
            if cut and any(cut) and cut != prev_table.header:
                rows = [cut] + rows
            prev_table.rows.extend(rows)
            prev_table.pages.append(part.page + 1)
        elif part.continuation_only:
            continue  # aligned text that continues nothing: not a table
        else:
            tables.append(Table(part.caption, [part.page + 1], part.rows[0], part.rows[1:], part.bbox,
                                part.columns, part.row_height))
        previous = part
    return tables

"""One table region's words into a grid: rows, columns, a merged header, a box per cell.

Rows are text lines (words grouped by their vertical centre). Columns are the gaps that
run through the body rows: an x position where (almost) no body row has ink. A row that
spans several columns (a section label) does not close a gap, because a gap may be inked
by up to ``SPANNING_SHARE`` of the rows. Header lines are the rows above the first rule
inside the table (booktabs' mid rule) or, in a table without inner rules, the leading
rows that hold no number; a header word wider than its column (a group title such as
"CIFAR-10" over "Acc." and "Err.") is given to every column it covers, and the header
lines are merged into one header cell per column.

A word is ``(x0, y0, x1, y1, text, block, line, word)`` as PyMuPDF's "words" gives it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GAP_SHARE = 0.3  # blank between two columns, in word heights; a space inside a cell is about 0.22
SPANNING_SHARE = 0.15  # rows allowed to ink a column gap (spanning labels, long names)
MAX_HEADER_ROWS = 4
PROSE_SHARE = 0.7  # a line of one phrase this wide is prose, not a table row
GROUP_RULE_GAP = 8.0  # points between a group title and the rule under it
HAS_NUMBER = re.compile(r"\d")


@dataclass
class Grid:
    header: list[str]
    rows: list[list[str]]
    columns: list[tuple[float, float]]  # x span of each column
    header_box: list[list[float] | None]  # per column, over all header lines
    boxes: list[list[list[float] | None]]  # per row, per cell: the union of its words, None when empty
    bold: list[tuple[int, int]]  # (row, column) of body cells set in bold
    row_height: float
    extent: tuple[float, float, float, float]  # the box of the words kept (prose around the table left out)


def _centre_y(w) -> float:
    return (w[1] + w[3]) / 2


def text_rows(words) -> list[list]:
    """Words grouped into lines by vertical centre, top to bottom, each left to right."""
    words = sorted(words, key=_centre_y)
    height = sorted(w[3] - w[1] for w in words)[len(words) // 2]
    rows: list[list] = []
    for w in words:
        if rows and _centre_y(w) - sum(map(_centre_y, rows[-1])) / len(rows[-1]) < 0.55 * height:
            rows[-1].append(w)
        else:
            rows.append([w])
    return [sorted(row, key=lambda w: w[0]) for row in rows]


def column_spans(rows: list[list], x0: float, x1: float, min_gap: float) -> list[tuple[float, float]]:
    """Columns as x spans: runs of ink across the rows, split where a gap of at least
    ``min_gap`` points is inked by no more than SPANNING_SHARE of the rows."""
    width = int(x1 - x0) + 3
    ink = [0] * width
    for row in rows:
        covered = bytearray(width)
        for w in row:
            a, b = max(0, int(w[0] - x0)), min(width - 1, int(w[2] - x0) + 1)
            covered[a:b] = b"\x01" * (b - a)
        for x in range(width):
            ink[x] += covered[x]
    allowed = int(SPANNING_SHARE * len(rows)) if len(rows) >= 4 else 0
    spans: list[list[float]] = []
    gap = min_gap  # the left edge counts as a gap
    for x in range(width):
        if ink[x] > allowed:
            if spans and gap < min_gap:
                spans[-1][1] = x0 + x + 1
            else:
                spans.append([x0 + x, x0 + x + 1])
            gap = 0
        else:
            gap += 1
    return [(a, b) for a, b in spans]


def _without_prose(rows: list[list], bbox, min_gap: float) -> list[list]:
    """The rows less the paragraphs above or below the table that the layout analyser
    boxed with it (a line of prose: one phrase without a column gap, across most of the
    width; a paragraph's short last line goes with it)."""
    def prose(row) -> bool:
        # justified prose stretches its spaces, but never to a column gap twice the usual
        return len(_phrases(row, 2 * min_gap)) == 1 and row[-1][2] - row[0][0] > PROSE_SHARE * (bbox[2] - bbox[0])

    flags = [prose(row) for row in rows]
    if not any(flags):
        return rows
    best, start = (0, 0), None  # the longest run of lines that are not prose: the table
    for i, flag in enumerate(flags + [True]):
        if not flag and start is None:
            start = i
        elif flag and start is not None:
            best = max(best, (start, i), key=lambda run: run[1] - run[0])
            start = None
    return rows[best[0]:best[1]]


def _nearest(spans, a: float, b: float) -> int:
    centre = (a + b) / 2
    return min(range(len(spans)), key=lambda i: max(spans[i][0] - centre, centre - spans[i][1], 0))


def _cells(row, spans) -> list[list]:
    cells: list[list] = [[] for _ in spans]
    for w in row:
        cells[_nearest(spans, w[0], w[2])].append(w)
    return cells


def _phrases(row, min_gap: float) -> list[list]:
    """Words of one line grouped where they sit closer than a column gap."""
    out: list[list] = []
    for w in row:
        if out and w[0] - out[-1][-1][2] < min_gap:
            out[-1].append(w)
        else:
            out.append([w])
    return out


def _header_cells(rows: list[list], spans, min_gap: float, rules: list[tuple]) -> list[list]:
    """Header lines into one list of words per column. On a line above the last one, a
    phrase over several columns (a group title) goes to every column under it: those
    whose centre the rule under the title spans (booktabs' cmidrule), or, without such a
    rule, whose centre lies within a quarter of the title's width of it."""
    cells: list[list] = [[] for _ in spans]
    for number, row in enumerate(rows):
        for phrase in _phrases(row, min_gap):
            a, b = phrase[0][0], max(w[2] for w in phrase)
            bottom = max(w[3] for w in phrase)
            under = [r for r in rules if bottom - 1 <= r[1] <= bottom + GROUP_RULE_GAP and min(r[2], b) > max(r[0], a)]
            if under:
                lo, hi = min(r[0] for r in under), max(r[2] for r in under)
            else:
                lo, hi = a - (b - a) / 4, b + (b - a) / 4
            covered = [i for i, (s0, s1) in enumerate(spans) if lo <= (s0 + s1) / 2 <= hi]
            if number < len(rows) - 1 and len(covered) > 1:
                for i in covered:
                    cells[i] += phrase
            else:
                cells[_nearest(spans, a, b)] += phrase
    return cells


def _joined(words) -> str:
    return " ".join(w[4] for w in words)


def _box(words) -> list[float] | None:
    if not words:
        return None
    return [round(min(w[0] for w in words), 1), round(min(w[1] for w in words), 1),
            round(max(w[2] for w in words), 1), round(max(w[3] for w in words), 1)]


def _numeric(row_cells) -> bool:
    return any(HAS_NUMBER.search(_joined(c)) for c in row_cells[1:])


def header_count(rows: list[list], spans, rules_y: list[float]) -> int:
    """How many leading lines form the header: those above the first inner rule, else the
    leading lines without numbers (at least one, never all)."""
    centres = [sum(map(_centre_y, r)) / len(r) for r in rows]
    for y in sorted(rules_y):
        above = sum(1 for c in centres if c < y)
        if 0 < above <= MAX_HEADER_ROWS and above < len(rows):
            return above
    count = 1
    while count < min(MAX_HEADER_ROWS, len(rows) - 1) and not _numeric(_cells(rows[count], spans)) \
            and any(_numeric(_cells(r, spans)) for r in rows[count + 1:]):
        count += 1
    return count


def build(words, bbox, rules_y: list[float], bold_words: set | None = None, partial_rules: list | None = None) -> Grid | None:
    """The grid of a table whose words are ``words`` inside ``bbox``; ``rules_y`` are the
    heights of the rules across it, ``partial_rules`` the (x0, y, x1) of shorter ones (under
    group titles); ``bold_words`` holds the words set in bold."""
    if len(words) < 4:
        return None
    rows = text_rows(words)
    height = sorted(w[3] - w[1] for w in words)[len(words) // 2]
    min_gap = max(2.0, GAP_SHARE * height)
    rows = _without_prose(rows, bbox, min_gap)
    if len(rows) < 2:
        return None
    words = [w for row in rows for w in row]
    first_spans = column_spans(rows[1:] or rows, bbox[0], bbox[2], min_gap)
    head = header_count(rows, first_spans, rules_y) if len(first_spans) >= 2 else 1
    body = rows[head:]
    spans = column_spans(body, bbox[0], bbox[2], min_gap)
    if len(spans) < 2:
        return None
    header_words = _header_cells(rows[:head], spans, min_gap, partial_rules or [])
    grid_rows, boxes, bold = [], [], []
    for r, row in enumerate(body):
        cells = _cells(row, spans)
        grid_rows.append([_joined(c) for c in cells])  # a row is one line: words left to right
        boxes.append([_box(c) for c in cells])
        if bold_words:
            bold += [(r, c) for c, cell in enumerate(cells) if cell and all(w in bold_words for w in cell)]
    return Grid([_joined(c) for c in header_words], grid_rows, spans, [_box(c) for c in header_words], boxes, bold,
                height * 1.3, tuple(_box(words)))

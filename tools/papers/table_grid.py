"""One table region's words into a grid: rows, columns, a merged header, a box per cell.

Rows are text lines (words grouped by their vertical centre). Columns are the gaps that
run through the body rows: an x position where (almost) no body row has ink. A row that
spans several columns (a section label) does not close a gap, because a gap may be inked
by up to ``SPANNING_SHARE`` of the rows. Header lines are the rows above the first rule
inside the table with results under it (booktabs' mid rule; a header of several levels has
rules inside it too) or, in a table without inner rules, the leading rows that hold no
number; a header word wider than its column (a group title such as "CIFAR-10" over "Acc."
and "Err.") is given to every column it covers, as far as it has room before its
neighbours, and the header lines are merged into one header cell per column ("BEAT Ours
MSE").

One region can hold several tables under one caption. A sub-caption line ("(a) Zero-shot")
separates the tables above and below it and labels the nearer one; a header line halfway
down (a row of names and no numbers with a rule under it, e.g. a second row of methods)
starts a new table with that header; a header that starts over at a later column ("Model
Acc. Model Acc.") cuts a list set in two halves side by side into two tables. Columns may
stand closer than a space between words where most rows have numbers on both sides of the
gap ("0.160 0.198"), but not groups of thousands ("1 281 167").

A word is ``(x0, y0, x1, y1, text, block, line, word)`` as PyMuPDF's "words" gives it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

GAP_SHARE = 0.3  # blank between two columns, in word heights; a space inside a cell is about 0.22
SPANNING_SHARE = 0.15  # rows allowed to ink a column gap (spanning labels, long names)
MAX_HEADER_ROWS = 4
PROSE_SHARE = 0.7  # a line of one phrase this wide is prose, not a table row
GROUP_RULE_GAP = 8.0  # points between a group title and the rule under it
HAS_NUMBER = re.compile(r"\d")
PLAIN_NUMBER = re.compile(r"^[-+−]?\d[\d.,]*%?[*†‡]*$|^[-–—]$")  # a cell that is a number ("42.1*") or a dash
THOUSANDS_HEAD, THOUSANDS_TAIL = re.compile(r"^[-+−]?\d{1,3}$"), re.compile(r"^\d{3}(?:[.,]\d+)?%?$")
MEASUREMENT = re.compile(r"\d[.,]\d|%|±")  # a measured number, not a year or a count
SUBCAPTION = re.compile(r"^\(([a-h]|[ivx]{1,4})\)$")  # "(a)", "(iii)": the first word of a sub-caption
NARROW_GAP = 1.0  # points: the least blank between two columns of numbers


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
    subcaption: str | None = None  # "(a) Training on Training-7K": one of several tables under one caption


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
            if spans and gap < min_gap and not (gap >= NARROW_GAP and _between_numbers(rows, x0 + x - gap, x0 + x)):
                spans[-1][1] = x0 + x + 1
            else:
                spans.append([x0 + x, x0 + x + 1])
            gap = 0
        else:
            gap += 1
    return [(a, b) for a, b in spans]


def _between_numbers(rows: list[list], a: float, b: float) -> bool:
    """Whether a blank narrower than a column gap still parts two columns: most rows have
    a number ending before it and another starting after it ("0.160 0.198" set as close as
    a space). A number in brackets after another ("0.059 (+7%)") is the same cell, and so are
    groups of thousands ("1 281 167")."""
    def parted(row) -> bool:
        left = max((w for w in row if w[2] <= a + 1), key=lambda w: w[2], default=None)
        right = min((w for w in row if w[0] >= b - 1), key=lambda w: w[0], default=None)
        return bool(left and right and PLAIN_NUMBER.match(left[4]) and PLAIN_NUMBER.match(right[4])
                    and not (THOUSANDS_HEAD.match(left[4]) and THOUSANDS_TAIL.match(right[4])))

    return sum(map(parted, rows)) >= max(2, len(rows) / 2)


def _without_prose(rows: list[list], bbox, min_gap: float) -> list[list]:
    """The rows less the paragraphs above or below the table that the layout analyser
    boxed with it (a line of prose: one phrase without a column gap, across most of the
    width; a paragraph's short last line goes with it)."""
    def prose(row) -> bool:
        # justified prose stretches its spaces, but never to a column gap twice the usual; a
        # line of numbers set close is a row
        return (len(_phrases(row, 2 * min_gap)) == 1 and row[-1][2] - row[0][0] > PROSE_SHARE * (bbox[2] - bbox[0])
                and sum(1 for w in row if PLAIN_NUMBER.match(w[4])) < len(row) / 2)

    flags = [prose(row) and not _subcaption(row, min_gap) for row in rows]
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
        phrases = _phrases(row, min_gap)
        for k, phrase in enumerate(phrases):
            a, b = phrase[0][0], max(w[2] for w in phrase)
            bottom = max(w[3] for w in phrase)
            under = [r for r in rules if bottom - 1 <= r[1] <= bottom + GROUP_RULE_GAP and min(r[2], b) > max(r[0], a)]
            # a title is centred over its columns: it reaches as far to each side as it has room
            # before its neighbours on the line (a rule under several titles is shared by them)
            room = min(a - (max(w[2] for w in phrases[k - 1]) + a) / 2 if k else float("inf"),
                       (phrases[k + 1][0][0] + b) / 2 - b if k + 1 < len(phrases) else float("inf"))
            if under:
                lo, hi = min(r[0] for r in under), max(r[2] for r in under)
                if room < float("inf"):
                    lo, hi = max(lo, a - room), min(hi, b + room)
            else:
                reach = (b - a) / 4 if room == float("inf") else min(room, (b - a) / 2)
                lo, hi = a - reach, b + reach
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


def _header_like(row_cells) -> bool:
    """A line that can be part of a header: no measured number ("0.16", "42%"), and either no
    row name or no plain numbers ("Ours 2025 2024" under method names is a header line;
    "BERT 110 12" is a row)."""
    rest = [w for c in row_cells[1:] for w in c]
    if any(MEASUREMENT.search(w[4]) for w in rest):
        return False
    return not row_cells[0] or not any(PLAIN_NUMBER.match(w[4]) for w in rest)


def header_count(rows: list[list], spans, rules_y: list[float]) -> int:
    """How many leading lines form the header: those above the first inner rule, else the
    leading lines without numbers (at least one, never all)."""
    centres = [sum(map(_centre_y, r)) / len(r) for r in rows]
    ends = sorted({above for y in rules_y if 0 < (above := sum(1 for c in centres if c < y)) <= MAX_HEADER_ROWS
                   and above < len(rows)})
    # a header of several levels has rules inside it (under the group titles, under a row of
    # years): the header ends at the first rule with a row of results under it
    for above in ends:
        if not _header_like(_cells(rows[above], spans)):
            return above
    if ends:
        return ends[0]
    count = 1
    while count < min(MAX_HEADER_ROWS, len(rows) - 1) and not _numeric(_cells(rows[count], spans)) \
            and any(_numeric(_cells(r, spans)) for r in rows[count + 1:]):
        count += 1
    return count


def build(words, bbox, rules_y: list[float], bold_words: set | None = None,
          partial_rules: list | None = None) -> list[Grid]:
    """The grids of the tables whose words are ``words`` inside ``bbox`` (one region can
    hold several under one caption); ``rules_y`` are the heights of the rules across it,
    ``partial_rules`` the (x0, y, x1) of shorter ones (under group titles); ``bold_words``
    holds the words set in bold."""
    if len(words) < 4:
        return []
    rows = text_rows(words)
    height = sorted(w[3] - w[1] for w in words)[len(words) // 2]
    min_gap = max(2.0, GAP_SHARE * height)
    rows = _without_prose(rows, bbox, min_gap)
    grids = []
    for block, subcaption in _blocks(rows, min_gap):
        for start, end in _pairs(_reheaders(block, rules_y, min_gap) + [len(block)]):
            if grid := _grid(block[start:end], bbox, rules_y, bold_words, partial_rules or [], height, min_gap):
                for half in _halves(grid):
                    half.subcaption = subcaption
                    grids.append(half)
    return grids


def _halves(grid: Grid) -> list[Grid]:
    """A table set in two halves side by side under one set of rules ("Method Acc. Method
    Acc."): the header starts over at a later column. Each half is a table of its own, so a
    row's right half does not name the method of its left half."""
    names = [" ".join(h.lower().split()) for h in grid.header]
    cut = next((k for k in range(2, len(names) - 1) if names[0] and names[k:] == names[:len(names) - k]), None)
    if cut is None:
        return [grid]
    out = []
    for a, b in ((0, cut), (cut, len(names))):
        kept = [r for r, row in enumerate(grid.rows) if any(row[a:b])]
        index = {old: new for new, old in enumerate(kept)}
        boxes = [box for r in kept for box in grid.boxes[r][a:b] + grid.header_box[a:b] if box]
        out.append(Grid(grid.header[a:b], [grid.rows[r][a:b] for r in kept], grid.columns[a:b], grid.header_box[a:b],
                        [grid.boxes[r][a:b] for r in kept], [(index[r], c - a) for r, c in grid.bold if r in index and a <= c < b],
                        grid.row_height, (min(x[0] for x in boxes), min(x[1] for x in boxes), max(x[2] for x in boxes),
                                          max(x[3] for x in boxes))))
    return out


def _pairs(ends: list[int]) -> list[tuple[int, int]]:
    return list(zip([0] + ends[:-1], ends))


def _subcaption(row, min_gap: float) -> str | None:
    """The text of a sub-caption line ("(b) Zero-shot"): one phrase starting with "(a)"..."(h)"
    or "(i)"..."(viii)", without numbers of a row ("(a) FK 61.69" is a row)."""
    if not SUBCAPTION.match(row[0][4]) or len(_phrases(row, 2 * min_gap)) > 1 or len(row) < 2:
        return None
    if any(PLAIN_NUMBER.match(w[4]) for w in row[1:]):
        return None
    return _joined(row)


def _blocks(rows: list[list], min_gap: float) -> list[tuple[list[list], str | None]]:
    """The rows cut at sub-caption lines. Sub-captions sit close to their own tables, all on
    one side (below in most papers): the side that the sub-captions with a table on either
    side show, the nearer one, holds for those at the region's edge too."""
    blocks: list[list[list]] = [[]]
    between: list[tuple[int, list]] = []  # (block index above, the sub-caption line)
    for row in rows:
        if _subcaption(row, min_gap):
            between.append((len(blocks) - 1, row))
            blocks.append([])
        else:
            blocks[-1].append(row)
    gaps = []  # (gap to the block above, gap to the block below)
    for above, row in between:
        top, bottom = min(w[1] for w in row), max(w[3] for w in row)
        gaps.append((top - max(w[3] for w in blocks[above][-1]) if blocks[above] else None,
                     min(w[1] for w in blocks[above + 1][0]) - bottom if blocks[above + 1] else None))
    sides = Counter("above" if up <= down else "below" for up, down in gaps if up is not None and down is not None)
    side = sides.most_common(1)[0][0] if sides else None
    labels: dict[int, str] = {}
    for (above, row), (up, down) in zip(between, gaps):
        own = side or ("above" if up is not None else "below")
        if own == "above" and up is not None:
            labels.setdefault(above, _subcaption(row, min_gap))
        elif own == "below" and down is not None:
            labels.setdefault(above + 1, _subcaption(row, min_gap))
    return [(block, labels.get(i)) for i, block in enumerate(blocks) if block]


def _has_value(row) -> bool:
    return any(MEASUREMENT.search(w[4]) for w in row)


def _reheaders(rows: list[list], rules_y: list[float], min_gap: float) -> list[int]:
    """Lines halfway down that head the lines under them: names in several columns and no
    numbers, between rows of measured numbers, with a rule right under them (a second row of
    methods: "ARIMA ETS ..." over two rows, then "ConvTrans Seq2Seq ..." over two more)."""
    out = []
    for i in range(2, len(rows) - 1):
        row, below = rows[i], rows[i + 1]
        named = [p for p in _phrases(row, min_gap) if any(c.isalpha() for w in p for c in w[4])]
        if len(named) < 2 or _has_value(row) or any(PLAIN_NUMBER.match(w[4]) for w in row) or not _has_value(rows[i - 1]) or not _has_value(below):
            continue
        bottom, next_top = max(w[3] for w in row), min(w[1] for w in below)
        if any(bottom - 1 <= y <= next_top + 1 for y in rules_y) and (not out or i - out[-1] >= 2):
            out.append(i)
    return out


def _notes(body: list[list], spans, column: int) -> bool:
    """Whether a column without a header holds only notes on the numbers to its left
    ("0.077 (+185%)", "71.2 ±0.3"): they belong to those cells."""
    cells = [_joined(_cells(row, spans)[column]) for row in body]
    filled = [c for c in cells if c]
    return len(filled) >= len(cells) / 2 and all(c[0] in "([±" and HAS_NUMBER.search(c) for c in filled)


def _grid(rows: list[list], bbox, rules_y: list[float], bold_words: set | None, partial_rules: list,
          height: float, min_gap: float) -> Grid | None:
    if len(rows) < 2:
        return None
    words = [w for row in rows for w in row]
    first_spans = column_spans(rows[1:] or rows, bbox[0], bbox[2], min_gap)
    head = header_count(rows, first_spans, rules_y) if len(first_spans) >= 2 else 1
    body = rows[head:]
    spans = column_spans(body, bbox[0], bbox[2], min_gap)
    if len(spans) < 2:
        return None
    header_words = _header_cells(rows[:head], spans, min_gap, partial_rules)
    if notes := [c for c in range(1, len(spans)) if not header_words[c] and _notes(body, spans, c)]:
        merged: list[tuple[float, float]] = []
        for c, span in enumerate(spans):
            merged.append((merged.pop()[0], span[1]) if c in notes else span)
        spans = merged
        header_words = _header_cells(rows[:head], spans, min_gap, partial_rules)
    grid_rows, boxes, bold = [], [], []
    for r, row in enumerate(body):
        cells = _cells(row, spans)
        grid_rows.append([_joined(c) for c in cells])  # a row is one line: words left to right
        boxes.append([_box(c) for c in cells])
        if bold_words:
            bold += [(r, c) for c, cell in enumerate(cells) if cell and all(w in bold_words for w in cell)]
    return Grid([_joined(c) for c in header_words], grid_rows, spans, [_box(c) for c in header_words], boxes, bold,
                height * 1.3, tuple(_box(words)))

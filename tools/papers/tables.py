"""Tables of a paper: where they are on a page, their captions, and stitching across pages.

Every page gets cheap tests only (a caption line, ruling lines, a grid of text repeating
one layout). On a candidate page, PyMuPDF's layout analyser (the ``pymupdf-layout``
model that ships inside the wheel: nothing is downloaded) says where the tables and
pictures are. That is what keeps a table next to a plot apart from the plot's strokes,
and finds unruled and booktabs tables of any height. Inside each table region the grid
comes from the words (``table_grid``), with the region's horizontal rules marking the
header. Captions go to the nearest table above or below them, each caption to one table.
A table whose rows continue at the top of the next page (no caption of its own, the same
columns) is stitched into one, without repeated headers and "continued" lines. A
"Table N" caption with a picture beside it and no text table is an image-only table: it
is reported with its page and region so the page image can be looked at.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from . import table_grid

# "Table 3: ..." / "Table 3. ..." / "TABLE III" / "Table A5: ..." (appendix) alone on its line; not "Table 3 shows ..."
CAPTION = re.compile(r"^\s*(Table|TABLE|Tab\.)\s+([0-9]+|[IVXLC]+|[A-Z]\.?[0-9]+)\s*([:.|]\s*(.*))?$")
CONTINUED = re.compile(r"^\W*(\(?\s*continued\b|cont(?:inued|\.)\s*(from|on)\b|turn (?:to|over to) (?:the )?next page"
                       r"|continued on next page|\(cont\.?\))", re.IGNORECASE)
MIN_RULE_LEN = 20.0
RULE_THICKNESS = 2.5
MIN_GRID_ROWS = 4
CAPTION_REACH = 60.0  # points between a caption and its table, above or below
OTHER_SIDE_FACTOR, OTHER_SIDE_POINTS = 1.5, 4.0  # a caption on the paper's unusual side counts as this much further
CONTINUES_BELOW = 0.3  # a continuation starts in this top share of its page
UNCAPTIONED_MIN_ROWS = 3
FULL_RULE = 0.6  # share of a table's width a rule spans to separate its header from its body
SIDE_BY_SIDE_GAP = 4.0  # points between the rules of two tables side by side
WORD_GAP = 0.3  # letters further apart than this share of the font size start a new word
NUMBER_GAP = 0.6  # digits and signs: math fonts set "88.55" with gaps of up to half an em
BOLD_FONT = re.compile(r"bold|\.B$|cmbx|-bx|black|heavy", re.IGNORECASE)


class Box(NamedTuple):
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass
class Candidate:
    page: int  # 0-based
    horizontal: list = field(default_factory=list, repr=False)  # the page's horizontal rules


@dataclass
class Part:
    """One table's piece on one page."""

    page: int  # 0-based
    bbox: Box
    grid: table_grid.Grid
    caption: str | None
    group: int = 0  # parts of one group (a region of the page) share its caption: sub-tables


@dataclass
class ImageTable:
    """A "Table N" caption whose table is a picture: no text to read, only to look at."""

    page: int  # 0-based
    caption: str
    bbox: Box  # the picture


@dataclass
class PageTables:
    page: int  # 0-based
    parts: list[Part] = field(default_factory=list)
    captions: list[tuple[Box, str]] = field(default_factory=list)
    pictures: list[Box] = field(default_factory=list)


@dataclass
class Table:
    caption: str | None
    header: list[str]
    rows: list[list[str]]
    header_box: list
    row_pages: list[int]  # 1-based page of each row
    boxes: list  # per row, per cell: [x0, y0, x1, y1] or None
    bold: list[tuple[int, int]]
    regions: list[dict]  # {"page": 1-based, "bbox": [...]}, one per part
    columns: int
    subcaption: str | None = None  # "(a) ...": one of several tables under one caption

    def as_dict(self, number: int) -> dict:
        label = None
        if self.caption and (m := CAPTION.match(self.caption)):
            label = f"Table {m.group(2)}"
        pages = sorted({r["page"] for r in self.regions})
        return {"id": f"t{number}", "label": label, "caption": self.caption, "subcaption": self.subcaption,
                "pages": pages,
                "header": self.header, "rows": self.rows, "bbox": self.regions[0]["bbox"], "regions": self.regions,
                "header_box": self.header_box, "row_pages": self.row_pages, "boxes": self.boxes,
                "bold": [list(b) for b in self.bold]}


def caption_lines(text: str) -> list[str]:
    """Lines that start a table caption: "Table 2: ..." ("Table 2:" alone too, its text on
    the next line), not a bare "Table 2" that a sentence broke onto a line of its own."""
    return [line.strip() for line in text.splitlines()
            if (m := CAPTION.match(line)) and (len(line.strip()) > 8 or m.group(3))]


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


def candidate(page, index: int, text: str, words, before: PageTables | None = None) -> Candidate | None:
    """Whether page ``index`` can hold a table: a caption, a grid of text, or, on the page
    right after a table (``before``: the previous candidate page), lines at the top that
    fit that table's columns: its continuation. Cheap tests only: the layout analyser
    costs about half a second a page and runs on candidates alone."""
    after = before is not None and before.page == index - 1 and bool(before.parts)
    if (caption_lines(text) or _grid_rows(words) >= MIN_GRID_ROWS
            or after and _continues_at_top(before.parts[-1].grid, words, page.rect.height)):
        return Candidate(index, _rules(page)[0])
    return None


def _continues_at_top(grid: table_grid.Grid, words, page_height: float) -> bool:
    """Whether two lines running one after the other near the top of a page fit the columns
    of the table that ended the page before: words in two or more of its columns and none
    across the gaps between them. Prose crosses those gaps; a continued table does not.
    (Stitching needs the same columns too, so a page that fails this holds no continuation.)"""
    spans = grid.columns
    x0, x1 = spans[0][0] - 12, spans[-1][1] + 12
    gaps = [(a[1] + b[0]) / 2 for a, b in zip(spans, spans[1:])]
    lines: dict[int, list] = {}
    for w in words:
        if w[3] <= CONTINUES_BELOW * page_height and x0 <= w[0] and w[2] <= x1:
            lines.setdefault(round((w[1] + w[3]) / 6), []).append(w)
    fits = []
    for key in sorted(lines):
        line = lines[key]
        crossed = any(w[0] < g < w[2] for w in line for g in gaps)
        columns = {sum(1 for g in gaps if g < (w[0] + w[2]) / 2) for w in line}
        fits.append(not crossed and len(columns) >= 2)
    return any(a and b for a, b in zip(fits, fits[1:]))


def _caption_positions(page, text: str) -> list[tuple[Box, str]]:
    """Each caption's box and text: from its "Table N" line to the end of its text block
    (MuPDF sometimes puts a table's last row and its caption in one block)."""
    import pymupdf

    if not caption_lines(text):
        return []
    out = []
    for block in page.get_text("dict", flags=pymupdf.TEXTFLAGS_DICT & ~pymupdf.TEXT_PRESERVE_LIGATURES)["blocks"]:
        lines = [(line["bbox"], "".join(s["text"] for s in line["spans"])) for line in block.get("lines", [])]
        start = next((i for i, (_, line) in enumerate(lines) if caption_lines(line)), None)
        if start is None:
            continue
        boxes = [b for b, _ in lines[start:]]
        out.append((Box(min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                        max(b[3] for b in boxes)), " ".join(" ".join(t for _, t in lines[start:]).split())))
    return out


def _side(caption: Box, table: Box) -> str | None:
    """Whether a caption sits right above or right below a table, or neither (another
    column, too far)."""
    overlap = min(caption.x1, table.x1) - max(caption.x0, table.x0)
    if overlap < 0.3 * min(caption.x1 - caption.x0, table.x1 - table.x0):
        return None
    if caption.y1 <= table.y0 + 4:
        return "above" if table.y0 - caption.y1 <= CAPTION_REACH else None
    return "below" if caption.y0 >= table.y1 - 4 and caption.y0 - table.y1 <= CAPTION_REACH else None


def assign_captions(tables: list[Box], captions: list[Box], preferred: str = "above") -> dict[int, int]:
    """Table index -> caption index, nearest pairs first (a caption on the paper's
    usual side counts as a little nearer), each caption and each table used once."""
    def distance(caption: Box, table: Box) -> float | None:
        side = _side(caption, table)
        if side is None:
            return None
        gap = max(table.y0 - caption.y1 if side == "above" else caption.y0 - table.y1, 0.0)
        return gap if side == preferred else OTHER_SIDE_FACTOR * gap + OTHER_SIDE_POINTS

    pairs = sorted((gap, t, c) for t, table in enumerate(tables) for c, caption in enumerate(captions)
                   if (gap := distance(caption, table)) is not None)
    taken_t, taken_c, out = set(), set(), {}
    for _, t, c in pairs:
        if t not in taken_t and c not in taken_c:
            out[t] = c
            taken_t.add(t)
            taken_c.add(c)
    return out


def _layout_boxes(page) -> list[tuple[Box, str]]:
    page.get_layout()
    return [(Box(*b[:4]), b[4]) for b in (page.layout_information or []) if len(b) >= 5]


def region_words(page, box: Box) -> tuple[list, set]:
    """The words inside a table region, split where characters stand apart, and those set
    in bold. PyMuPDF's "words" split at space characters only, and adjacent cells of a
    LaTeX table have none between them ("28.07" "9.33" -> "28.079.33")."""
    import pymupdf

    words, bold = [], set()
    joins: set[int] = set()  # words that continue the previous one across a span boundary
    raw = page.get_text("rawdict", clip=pymupdf.Rect(box) + (-2, -2, 2, 2),
                        flags=pymupdf.TEXTFLAGS_RAWDICT & ~pymupdf.TEXT_PRESERVE_LIGATURES)
    for b, block in enumerate(raw["blocks"]):
        for n, line in enumerate(block.get("lines", [])):
            if abs(line["dir"][1]) > 0.1:
                continue  # rotated text: a label beside the table, not a cell
            previous_end = None  # the last character of the previous span, when no space followed it
            for span in line["spans"]:
                is_bold = bool(span["flags"] & 16) or bool(BOLD_FONT.search(span["font"]))
                current: list = []
                first = True
                for char in span["chars"] + [None]:
                    if char is not None and not current and first and previous_end is not None and char["c"].strip():
                        # a font change mid-word ("BERT" + "LARGE", "60." + "5"): the same word if close
                        if not _apart(previous_end, char, span["size"]):
                            joins.add(len(words))
                    apart = char is not None and current and _apart(current[-1], char, span["size"])
                    if char is None or char["c"].isspace() or apart:
                        if current:
                            word = (min(c["bbox"][0] for c in current), min(c["bbox"][1] for c in current),
                                    max(c["bbox"][2] for c in current), max(c["bbox"][3] for c in current),
                                    "".join(c["c"] for c in current), b, n, len(words))
                            words.append(word)
                            if is_bold:
                                bold.add(word)
                        previous_end = current[-1] if char is None and current else None
                        current = []
                        first = first and char is None
                    if char is not None and char["c"].strip() and char["c"].isprintable():
                        current.append(char)
                    first = False
    return _join(words, bold, joins)


def _apart(before: dict, char: dict, size: float) -> bool:
    """Whether two characters belong to different words: the wider gap is allowed inside
    a number only ("88.55" in a math font), not after a symbol ("R@1↑" | "R@5↑")."""
    gap = char["bbox"][0] - before["bbox"][2]
    return gap > size * (NUMBER_GAP if _numeric_char(char["c"]) and _numeric_char(before["c"]) else WORD_GAP)


def _numeric_char(c: str) -> bool:
    return c.isdigit() or c in ".,+-−±"


def _join(words: list, bold: set, joins: set[int]) -> tuple[list, set]:
    out: list = []
    for i, w in enumerate(words):
        if i in joins and out:
            last = out[-1]
            merged = (last[0], min(last[1], w[1]), w[2], max(last[3], w[3]), last[4] + w[4], w[5], w[6], last[7])
            if last in bold and w in bold:
                bold.add(merged)
            out[-1] = merged
        else:
            out.append(w)
    return out, bold & set(out)


def _inside(box: Box, words, margin: float = 2.0) -> list:
    return [w for w in words if box.x0 - margin <= (w[0] + w[2]) / 2 <= box.x1 + margin
            and box.y0 - margin <= (w[1] + w[3]) / 2 <= box.y1 + margin]


def page_parts(page, cand: Candidate, words, text: str) -> PageTables:
    """The table regions on one candidate page with their grids, the page's captions and
    pictures; captions are given out later, for the whole paper at once (``give_captions``)."""
    boxes = _layout_boxes(page)
    middle = page.rect.width / 2
    # reading order: the left column (and full-width tables) top to bottom, then the right
    regions = sorted((b for b, kind in boxes if kind == "table"), key=lambda b: (b.x0 >= middle - 10, b.y0))
    pictures = [b for b, kind in boxes if kind == "picture"] + [Box(*i["bbox"]) for i in page.get_image_info()]
    captions = _caption_positions(page, text)
    out = PageTables(cand.page, captions=captions, pictures=pictures)
    caption_boxes = [box for box, _ in captions]
    for group, whole in enumerate(regions):
        for region in _side_by_side(whole, cand.horizontal, words, caption_boxes):
            region = _without_captions(region, caption_boxes)
            found, bold = region_words(page, region)
            inside = [w for w in _inside(region, found)
                      if not any(_inside(c, [w], 0.5) for c in caption_boxes)]
            # rules across the table (booktabs' mid rule), not the partial ones under a group title
            rules_y = [r[1] for r in cand.horizontal if region.y0 + 1 < r[1] < region.y1 - 1
                       and min(r[2], region.x1) - max(r[0], region.x0) > FULL_RULE * (region.x1 - region.x0)]
            partial = [(r[0], r[1], r[2]) for r in cand.horizontal if region.y0 + 1 < r[1] < region.y1 - 1
                       and region.x0 - 2 <= r[0] and r[2] <= region.x1 + 2]
            for grid in table_grid.build(inside, region, rules_y, bold, partial):
                if grid.rows:
                    out.parts.append(Part(cand.page, Box(*grid.extent), grid, None, group))
    return out


def _side_by_side(region: Box, horizontal: list, words, captions: list[Box]) -> list[Box]:
    """A region cut where tables stand side by side: each has its own rules (top, mid,
    bottom), and no rule or word (but a caption's) crosses the gap between them. They are
    sub-tables under one caption, or tables with captions of their own that the layout
    analyser boxed together."""
    near = [r for r in horizontal if region.y0 - 6 <= r[1] <= region.y1 + 6
            and min(r[2], region.x1) - max(r[0], region.x0) > 0.5 * (r[2] - r[0])]
    clusters: list[list] = []  # [x0, x1, heights]
    for x0, y, x1, _ in sorted(near):
        if clusters and x0 < clusters[-1][1] - 1:
            clusters[-1][1] = max(clusters[-1][1], x1)
            clusters[-1][2].add(round(y))
        else:
            clusters.append([x0, x1, {round(y)}])
    height, width = region.y1 - region.y0, region.x1 - region.x0

    def ruled(cluster) -> bool:  # a table's own rules: at least two, apart, under a good share of the width
        return (len(cluster[2]) >= 2 and max(cluster[2]) - min(cluster[2]) > 0.3 * height
                and cluster[1] - cluster[0] > 0.2 * width)

    cuts = []
    for left, right in zip(clusters, clusters[1:]):
        cut = (left[1] + right[0]) / 2
        crossed = any(w[0] < cut - 1 and w[2] > cut + 1 and region.y0 <= (w[1] + w[3]) / 2 <= region.y1
                      and not _inside_any(w, captions) for w in words)
        apart = right[0] - left[1] >= SIDE_BY_SIDE_GAP  # not the touching edges of a grid's cells
        if apart and ruled(left) and ruled(right) and not crossed and region.x0 < cut < region.x1:
            cuts.append(cut)
    edges = [region.x0] + cuts + [region.x1]
    return [region._replace(x0=a, x1=b) for a, b in zip(edges, edges[1:])]


def _inside_any(word, boxes: list[Box]) -> bool:
    return any(_inside(b, [word], 0.5) for b in boxes)


def _without_captions(region: Box, captions: list[Box]) -> Box:
    """The analyser sometimes boxes a caption with its table: cut the region at it."""
    for c in captions:
        overlap = min(c.x1, region.x1) - max(c.x0, region.x0)
        if overlap <= 0.3 * min(c.x1 - c.x0, region.x1 - region.x0) or not (region.y0 - 1 <= (c.y0 + c.y1) / 2 <= region.y1 + 1):
            continue  # the caption of a table beside this one does not cut it
        if (c.y0 + c.y1) / 2 > (region.y0 + region.y1) / 2:
            region = region._replace(y1=min(region.y1, c.y0 - 1))
        else:
            region = region._replace(y0=max(region.y0, c.y1 + 1))
    return region


def give_captions(pages: list[PageTables]) -> tuple[list[Part], list[ImageTable]]:
    """Captions to tables over the whole paper. A paper puts its table captions on one
    side (above in most styles, below in some): the side that the unambiguous pairs show
    is preferred, so a caption under its table is not handed to the table below it.
    Captions left over with a picture next to them are image-only tables."""
    votes: Counter = Counter()
    for page in pages:
        for part in page.parts:
            sides = {side for box, _ in page.captions if (side := _side(box, part.bbox))}
            if len(sides) == 1:
                votes[sides.pop()] += 1
    preferred = votes.most_common(1)[0][0] if votes else "above"
    parts, images = [], []
    for page in pages:
        pairs = assign_captions([p.bbox for p in page.parts], [c for c, _ in page.captions], preferred)
        for t, part in enumerate(page.parts):
            part.caption = page.captions[pairs[t]][1] if t in pairs else None
        _share_captions(page.parts)
        parts += page.parts
        free = [c for i, c in enumerate(page.captions) if i not in set(pairs.values())]
        for p, c in assign_captions(page.pictures, [c for c, _ in free], preferred).items():
            images.append(ImageTable(page.page, free[c][1], page.pictures[p]))
    return parts, images


def _share_captions(parts: list[Part]) -> None:
    """Sub-tables share their caption: a part without one takes its group's (the one
    caption its group-mates were given), or that of the sub-tables right above it that the
    layout analyser boxed apart ("(a)" and "(b)" in one region, "(c)" and "(d)" in the next)."""
    groups: dict[int, list[Part]] = {}
    for part in parts:
        groups.setdefault(part.group, []).append(part)
    captions = {}
    for g, members in groups.items():
        given = {p.caption for p in members if p.caption}
        if len(given) == 1:
            captions[g] = given.pop()
    order = list(groups)
    for above, below in zip(order, order[1:]):
        if below not in captions and above in captions and _more_subtables(groups[above], groups[below]):
            captions[below] = captions[above]
    for part in parts:
        if part.caption is None and part.group in captions:
            part.caption = captions[part.group]


def _box_of(parts: list[Part]) -> Box:
    return Box(min(p.bbox.x0 for p in parts), min(p.bbox.y0 for p in parts), max(p.bbox.x1 for p in parts),
               max(p.bbox.y1 for p in parts))


def _more_subtables(above: list[Part], below: list[Part]) -> bool:
    a, b = _box_of(above), _box_of(below)
    overlap = min(a.x1, b.x1) - max(a.x0, b.x0)
    return (any(p.grid.subcaption for p in above + below) and 0 <= b.y0 - a.y1 <= CAPTION_REACH
            and overlap > 0.5 * min(a.x1 - a.x0, b.x1 - b.x0))


def _label(caption: str | None) -> str | None:
    found = CAPTION.match(caption or "")
    return found.group(2) if found else None


def _continues(caption: str, previous: str | None) -> bool:
    """"Table 1: ... (continued from previous page)" under a part of Table 1."""
    return bool(re.search(r"\bcontinued\b|\bcont\.", caption, re.IGNORECASE)) and _label(caption) == _label(previous)


def _same_columns(a: table_grid.Grid, b: table_grid.Grid) -> bool:
    return len(a.columns) == len(b.columns) and all(abs(x[0] - y[0]) <= 12 for x, y in zip(a.columns, b.columns))


def _norm(cells: list[str]) -> list[str]:
    return [" ".join(c.lower().split()) for c in cells]


def _keep_row(row: list[str], header: list[str]) -> bool:
    """Not a repeated header and not a "continued on the next page" line."""
    text = " ".join(c for c in row if c)
    return bool(text) and _norm(row) != _norm(header) and not CONTINUED.search(text)


def _new_table(part: Part) -> Table:
    g = part.grid
    table = Table(part.caption, g.header, [], g.header_box, [], [], [], [], len(g.columns), g.subcaption)
    _append(table, part, g.rows, g.boxes, g.bold)
    return table


def _append(table: Table, part: Part, rows, boxes, bold) -> None:
    start = len(table.rows)
    kept = [i for i, row in enumerate(rows) if _keep_row(row, table.header)]
    index = {old: new for new, old in enumerate(kept)}
    table.rows += [rows[i] for i in kept]
    table.boxes += [boxes[i] for i in kept]
    table.row_pages += [part.page + 1] * len(kept)
    table.bold += [(start + index[r], c) for r, c in bold if r in index]
    table.regions.append({"page": part.page + 1, "bbox": [round(v, 1) for v in part.bbox]})


def stitch(parts: list[Part], page_heights: dict[int, float]) -> list[Table]:
    """Tables in reading order, each continuation appended to the table it continues."""
    tables: list[Table] = []
    first_on_page: dict[int, Part] = {}
    last_on_page: dict[int, Part] = {}
    for part in parts:
        first_on_page.setdefault(part.page, part)
        last_on_page[part.page] = part
    previous: Part | None = None
    for part in parts:
        continues = (
            tables and previous is not None and (part.caption is None or _continues(part.caption, tables[-1].caption))
            and part.page == previous.page + 1
            and last_on_page.get(previous.page) is previous and first_on_page[part.page] is part
            and part.bbox.y0 < CONTINUES_BELOW * page_heights[part.page]
            and _same_columns(part.grid, previous.grid)
        )
        if continues:
            g = part.grid
            own_header = [g.header] if _norm(g.header) != _norm(tables[-1].header) else []
            _append(tables[-1], part, own_header + g.rows, [g.header_box] * len(own_header) + g.boxes,
                    [(r + len(own_header), c) for r, c in g.bold])
        elif part.caption is None and len(part.grid.rows) < UNCAPTIONED_MIN_ROWS:
            continue  # a small uncaptioned grid: figure text or an equation, not a table
        else:
            tables.append(_new_table(part))
        previous = part
    return tables

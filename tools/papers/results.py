"""Reported numbers: the table cells whose row or column header names a metric.

Matching ignores case, punctuation, units and common abbreviations, so the metric
"accuracy" finds a column headed "CIFAR-10 Acc. (%)" and "error rate" finds "Err. [%]".
"""

from __future__ import annotations

import re

ABBREVIATIONS = {
    "acc": "accuracy", "err": "error", "ppl": "perplexity", "prec": "precision", "rec": "recall",
    "f1score": "f1", "top1": "top1", "map": "map", "params": "parameters", "param": "parameters",
    "mem": "memory", "lat": "latency",
}
FILLER_WORDS = {"rate", "score", "the", "of", "avg", "average", "mean", "pct", "percent", "percentage"}
UNIT = re.compile(r"[(\[]\s*(%|‰|[a-zA-Z]{1,4}(?:/[a-zA-Z]{1,4})?)\s*[)\]]")
# Thousands separators first ('1,234,567', '12,345.6'), then a decimal point or comma
# ('95.1', '0,5'), then a bare fraction ('.952').
NUMBER = re.compile(r"[-+−]?(?:[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:[.,]\d+)?|\.\d+)(?:e[-+]?\d+)?",
                    re.IGNORECASE)
THOUSANDS = re.compile(r"^[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$")


def tokens(text: str) -> set[str]:
    """Comparable words of a header: lowercase, no units, abbreviations expanded."""
    text = UNIT.sub(" ", text.lower()).replace("top-1", "top1").replace("top-5", "top5")
    words = re.findall(r"[a-z0-9]+", text)
    return {ABBREVIATIONS.get(w, w) for w in words} - FILLER_WORDS


def matches(metric: str, header: str) -> bool:
    wanted = tokens(metric)
    return bool(wanted) and wanted <= tokens(header)


def unit_of(header: str, cell: str) -> str | None:
    if "%" in cell or "%" in header:
        return "%"
    found = UNIT.search(header)
    return found.group(1) if found else None


def number(cell: str) -> float | None:
    """The first number in a cell ('95.1 ± 0.2' -> 95.1), or None."""
    found = NUMBER.search(cell.replace("−", "-"))
    if not found:
        return None
    text = found.group(0)
    # '1,234' groups thousands (English papers); '0,952' and '95,3' are decimal commas.
    text = text.replace(",", "") if THOUSANDS.match(text) else text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return None


def find(tables: list[dict], metric: str, method: str | None = None) -> list[dict]:
    """Every cell that reports ``metric``; with ``method``, only rows that name it in
    another cell (or, for tables with metrics as rows, columns headed by it)."""
    method_key = method.lower().strip() if method else None
    hits = []
    for table in tables:
        header, rows = table["header"], table["rows"]
        for c, column_header in enumerate(header):
            if c == 0 or not matches(metric, column_header):
                continue
            for r, row in enumerate(rows):
                named = method_key is None or any(method_key in cell.lower() for i, cell in enumerate(row) if i != c)
                if c < len(row) and named:
                    hits.append(_hit(table, r, c, row[0], column_header, row[c]))
        for r, row in enumerate(rows):  # transposed: metrics as rows, methods as columns
            if not row or not matches(metric, row[0]):
                continue
            for c in range(1, min(len(row), len(header))):
                if method_key is None or method_key in header[c].lower():
                    hits.append(_hit(table, r, c, row[0], header[c], row[c]))
    return hits


def _hit(table: dict, row: int, column: int, row_header: str, column_header: str, text: str) -> dict:
    return {"table": table["id"], "caption": table.get("caption"), "page": table["pages"][0],
            "row": row, "column": column, "row_header": row_header, "column_header": column_header,
            "text": text, "value": number(text), "unit": unit_of(column_header + " " + row_header, text)}

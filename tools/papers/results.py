"""Reported numbers: the table cells that report a metric, best candidate first.

A metric is matched against a column's header (all its header lines, group titles
included), and against the table's caption when the columns name datasets or models
instead ("Top-1 error (%) on ImageNet" over columns "plain" and "ResNet"). Matching
ignores case, punctuation and units and knows the usual names of a metric ("err",
"error rate"; "PPL", "perplexity"; "bits per byte", "bpb"), and each metric's direction
(higher or lower is better). A method is matched on whole words, a whole cell first;
"no X" and "w/o X" rows do not name X. With no method, rows that say "ours"/"proposed"
and cells set in bold (the best result) come first. Every candidate carries a confidence
and the reasons it ranked where it did.
"""

from __future__ import annotations

import re

SYNONYMS = [  # phrase -> canonical word; longer phrases first
    ("mean average precision", "map"), ("average precision", "map"), ("bits per byte", "bpb"),
    ("bits/byte", "bpb"), ("bits per character", "bpc"), ("bits per dim", "bpd"), ("word error rate", "wer"),
    ("character error rate", "cer"), ("exact match", "em"), ("f-measure", "f1"), ("f-score", "f1"),
    ("f1-score", "f1"), ("f1 score", "f1"), ("error rate", "error"), ("top-1", "top1"), ("top 1", "top1"),
    ("top-5", "top5"), ("top 5", "top5"), ("rouge-l", "rougel"), ("mAP", "map"),
]
ABBREVIATIONS = {
    "acc": "accuracy", "accu": "accuracy", "err": "error", "errors": "error", "ppl": "perplexity",
    "prec": "precision", "rec": "recall", "f1score": "f1", "ap": "map", "params": "parameters",
    "param": "parameters", "mem": "memory", "lat": "latency",
}
FILLER_WORDS = {"rate", "score", "the", "of", "avg", "mean", "pct", "percent", "percentage", "on", "in", "at", "set"}
UNIT_WORDS = {"%", "‰", "ms", "s", "sec", "h", "hr", "hrs", "min", "m", "k", "b", "g", "gb", "mb", "kb", "tb", "x", "fps",
              "db", "pts", "us", "µs", "w", "kwh", "j", "days"}
HIGHER_BETTER = {"accuracy", "f1", "bleu", "map", "precision", "recall", "auc", "em", "rouge", "rougel", "psnr",
                 "ssim", "meteor", "cider", "miou", "iou", "top1", "top5", "chrf", "ndcg", "mrr", "spearman", "r2"}
LOWER_BETTER = {"error", "perplexity", "bpb", "bpc", "bpd", "loss", "fid", "wer", "cer", "mae", "mse", "rmse",
                "latency", "ece", "nll"}
# what a column can report besides the metric asked for: a caption's metric does not reach these
OTHER_QUANTITIES = {"parameters", "flops", "macs", "time", "memory", "throughput", "speed", "size", "epochs", "steps",
                    "hours", "layers", "depth", "width", "heads", "lr", "batch", "dropout", "decay"}
METRIC_WORDS = HIGHER_BETTER | LOWER_BETTER | OTHER_QUANTITIES
UNIT = re.compile(r"[(\[]\s*(%|‰|[a-zA-Z]{1,4}(?:/[a-zA-Z]{1,4})?)\s*[)\]]")
# Thousands separators first ('1,234,567', '12,345.6'), then a decimal point or comma
# ('95.1', '0,5'), then a bare fraction ('.952').
NUMBER = re.compile(r"[-+−]?(?:[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:[.,]\d+)?|\.\d+)(?:e[-+]?\d+)?",
                    re.IGNORECASE)
THOUSANDS = re.compile(r"^[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$")
OURS = re.compile(r"\b(?:ours|our\s+(?:method|model|approach|system)|proposed|this\s+(?:work|paper))\b", re.IGNORECASE)
NEGATION = re.compile(r"(?:\bno|\bw/o|\bwithout|\bminus|[-−]\s*)\s*$", re.IGNORECASE)
MAIN_CAPTION = re.compile(r"\b(?:main|comparison|compared|state[- ]of[- ]the[- ]art|sota|results?)\b", re.IGNORECASE)
ABLATION_CAPTION = re.compile(r"\b(?:ablation|ablations|ablating|hyper-?parameters?|architectures?)\b", re.IGNORECASE)


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us")) and len(word) > 3:
        return word[:-1]
    return word


def _unit_or_metric(found: re.Match) -> str:
    """A unit in brackets goes ("(%)", "(ms)"); other words stay ("(PPL)", "(test)")."""
    inner = found.group(1).lower()
    return " " if inner in UNIT_WORDS else f" {inner} "


def tokens(text: str) -> set[str]:
    """Comparable words of a header: lowercase, singular, no units, synonyms and
    abbreviations as one canonical word ("Top-1 err. (%)" -> {"top1", "error"})."""
    text = UNIT.sub(_unit_or_metric, text.lower())
    for phrase, canonical in SYNONYMS:
        text = text.replace(phrase.lower(), f" {canonical} ")
    words = {ABBREVIATIONS.get(w, ABBREVIATIONS.get(_singular(w), _singular(w))) for w in re.findall(r"[a-z0-9]+", text)}
    return words - FILLER_WORDS


def _header_tokens(header: str, caption_words: set[str]) -> set[str]:
    """A header's words; a column headed just "Top-1" reports accuracy, unless the caption
    says the table reports errors."""
    words = tokens(header)
    if words & {"top1", "top5"} and "error" not in words | caption_words:
        words.add("accuracy")
    return words


def matches(metric: str, header: str) -> bool:
    wanted = tokens(metric)
    return bool(wanted) and wanted <= tokens(header)


def direction(metric: str, header: str = "") -> str | None:
    """'max' when higher is better, 'min' when lower is, from arrows or the metric's name."""
    if "↑" in header:
        return "max"
    if "↓" in header:
        return "min"
    words = tokens(metric) | tokens(header)
    if words & LOWER_BETTER:
        return "min"
    return "max" if words & HIGHER_BETTER else None


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


def method_match(method: str, text: str) -> tuple[float, str] | None:
    """How well a cell names ``method``: the whole cell, its start, or a whole word in it;
    None when it does not, or only negated ("No clipping" does not name "clipping")."""
    key, cell = " ".join(method.lower().split()), " ".join(text.lower().split())
    if not key or not cell:
        return None
    if cell == key or re.sub(r"\s*\[\d+(?:,\s*\d+)*\]|\s*\(ours\)|[*†‡]", "", cell) == key:
        return 1.0, f"the row is {text!r}"
    pattern = re.compile(rf"(?<![\w-]){re.escape(key)}(?![\w-])")
    for hit in pattern.finditer(cell):
        if NEGATION.search(cell[:hit.start()]):
            continue
        if hit.start() == 0:
            return 0.8, f"the row starts with {method!r}"
        return 0.6, f"{method!r} is a word of {text!r}"
    return None


def _metric_columns(table: dict, wanted: set[str]) -> list[tuple[int, float, str]]:
    """(column, score, reason) of the columns that report the metric."""
    header, caption = table["header"], _caption(table)
    caption_words = tokens(caption)
    sub_words = tokens(table.get("subcaption") or "")  # "(b) CIFAR-100": the dataset of a whole sub-table
    out = []
    for c, text in enumerate(header):
        if c == 0:
            continue
        words = _header_tokens(text, caption_words)
        if wanted == words - {"test", "val", "validation", "dev"}:
            out.append((c, 0.55, f"column {text!r} is the metric"))
        elif wanted <= words:
            out.append((c, 0.5, f"column {text!r} names the metric"))
        elif wanted & words and wanted <= words | sub_words and not (words & METRIC_WORDS - wanted):
            out.append((c, 0.45, f"column {text!r} under the sub-caption names the metric"))
        elif (wanted - METRIC_WORDS <= words | sub_words and wanted <= words | caption_words
              and not (words & METRIC_WORDS - wanted)):
            # the caption may name the metric ("error rates"), the header the rest ("Top-5 (test)")
            out.append((c, 0.3, f"the caption names the metric; column {text!r}"))
    return out


def find(tables: list[dict], metric: str, method: str | None = None) -> list[dict]:
    """Every cell that reports ``metric`` (with ``method``: in rows, or columns, naming
    it), most likely first: the paper's own number for its main metric on top."""
    wanted = tokens(metric)
    if not wanted:
        return []
    hits = []
    for order, table in enumerate(tables):
        bonus, why = _table_bonus(table, order, len(tables))
        bold = {tuple(b) for b in table.get("bold", [])}
        for c, score, reason in _metric_columns(table, wanted):
            for r, row in enumerate(table["rows"]):
                if c >= len(row):
                    continue
                named = _row_method(row, c, method, (r, c) in bold, table["header"][c])
                if named is None:
                    continue
                m_score, m_reason = named
                hits.append(_hit(table, r, c, row[0], table["header"][c], row[c], score + m_score + bonus,
                                 [reason, m_reason, why], metric, (r, c) in bold))
        caption_words = tokens(_caption(table))
        for r, row in enumerate(table["rows"]):  # transposed: metrics (or datasets) as rows, methods as columns
            row_words = tokens(row[0]) if row else set()
            if not row_words & wanted or not wanted - METRIC_WORDS <= row_words or not wanted <= row_words | caption_words:
                continue
            for c in range(1, min(len(row), len(table["header"]))):
                named = _column_method(table["header"][c], method, (r, c) in bold)
                if named is None:
                    continue
                m_score, m_reason = named
                hits.append(_hit(table, r, c, row[0], table["header"][c], row[c], 0.45 + m_score + bonus,
                                 [f"row {row[0]!r} names the metric", m_reason, why], metric, (r, c) in bold))
    hits.sort(key=lambda h: -h.pop("score"))
    return hits


def _row_method(row: list[str], column: int, method: str | None, bold: bool, header: str) -> tuple[float, str] | None:
    """How the row names the method; or the column, when its header names the method over
    the metric ("BEAT" over "MSE" and "MAE")."""
    cells = [cell for i, cell in enumerate(row) if i != column]
    if method:
        best = max((m for cell in cells if (m := method_match(method, cell))), default=None)
        if best is None and (found := method_match(method, header)):
            best = (found[0], found[1].replace("the row", "the column"))
        return (0.4 * best[0], best[1]) if best else None
    return _fallback(" ".join(cells), bold)


def _caption(table: dict) -> str:
    """The caption, with the sub-caption of a table that shares it ("(a) Zero-shot")."""
    return " ".join(filter(None, (table.get("caption"), table.get("subcaption"))))


def _column_method(header: str, method: str | None, bold: bool) -> tuple[float, str] | None:
    if method:
        found = method_match(method, header)
        return (0.4 * found[0], found[1].replace("row", "column")) if found else None
    return _fallback(header, bold)


def _fallback(text: str, bold: bool) -> tuple[float, str]:
    """No method named: the paper's own rows ("ours", "proposed") and bold cells first."""
    score, reasons = 0.0, []
    if OURS.search(text):
        score += 0.3
        reasons.append("the row is marked as the paper's own")
    if bold:
        score += 0.15
        reasons.append("set in bold (the best result)")
    return score, "; ".join(reasons)


def _table_bonus(table: dict, order: int, count: int) -> tuple[float, str]:
    caption = _caption(table)
    if ABLATION_CAPTION.search(caption):
        return -0.1, "an ablation or set-up table"
    if MAIN_CAPTION.search(caption):
        return 0.05 + 0.02 * (1 - order / max(count, 1)), "a results table"
    return 0.02 * (1 - order / max(count, 1)), ""


def _hit(table: dict, row: int, column: int, row_header: str, column_header: str, text: str, score: float,
         reasons: list[str], metric: str, bold: bool) -> dict:
    value = number(text)
    if value is None:
        score -= 0.3
        reasons.append("no number in the cell")
    boxes = table.get("boxes") or []
    box = boxes[row][column] if row < len(boxes) and column < len(boxes[row]) else None
    pages = table.get("row_pages") or []
    if table.get("subcaption"):
        reasons.append(f"sub-table {table['subcaption']!r}")
    return {"table": table["id"], "caption": table.get("caption"),
            "page": pages[row] if row < len(pages) else table["pages"][0],
            "bbox": box, "row": row, "column": column, "row_header": row_header, "column_header": column_header,
            "text": text, "value": value, "unit": unit_of(column_header + " " + row_header, text),
            "direction": direction(metric, column_header), "bold": bold,
            "confidence": round(max(0.0, min(1.0, score)), 3), "score": score,  # the order: unclamped
            "reason": "; ".join(r for r in reasons if r)}

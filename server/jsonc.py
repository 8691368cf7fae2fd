"""Set one server entry in a JSON or JSON-with-comments config file, editing the text.

VS Code (and Cursor, and Claude Code's own files) accept ``//`` and ``/* */`` comments
and trailing commas. A parse-and-dump round trip would delete the user's comments and
reformat the file, so the entry is spliced into the text instead: everything outside the
sotalab entry stays byte for byte, and the result is parsed again to prove it means what
was intended.
"""

from __future__ import annotations

import json

_decoder = json.JSONDecoder()
WHITESPACE = " \t\r\n"


class JsoncError(ValueError):
    """The text is not JSON with comments, or not an object where one is needed."""


def blank_comments(text: str) -> str:
    """``text`` with comments and trailing commas replaced by spaces (newlines kept), so
    that it parses as plain JSON and every offset still points at the same character."""
    out = list(text)
    i, n = 0, len(text)
    last_comma = None  # offset of a comma not yet followed by a value
    while i < n:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            last_comma = None
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise JsoncError("a /* comment is never closed")
            out[i:end + 2] = [c if c == "\n" else " " for c in text[i:end + 2]]
            i = end + 2
            continue
        elif ch == ",":
            last_comma = i
        elif ch in "}]":
            if last_comma is not None:
                out[last_comma] = " "
            last_comma = None
        elif ch not in WHITESPACE:
            last_comma = None
        i += 1
    return "".join(out)


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in WHITESPACE:
        i += 1
    return i


def members(blank: str, start: int) -> list[tuple[str, int, int]]:
    """(name, value start, value end) of each member of the object opening at ``start``."""
    if start >= len(blank) or blank[start] != "{":
        raise JsoncError("expected an object")
    found, i = [], _skip(blank, start + 1)
    while blank[i] != "}":
        name, i = _decoder.raw_decode(blank, i)
        i = _skip(blank, i)
        if blank[i] != ":":
            raise JsoncError(f"expected ':' after {name!r}")
        value_start = _skip(blank, i + 1)
        _, value_end = _decoder.raw_decode(blank, value_start)
        found.append((name, value_start, value_end))
        i = _skip(blank, value_end)
        if blank[i] == ",":
            i = _skip(blank, i + 1)
    return found


def _indent_of(text: str, offset: int) -> str:
    line_start = text.rfind("\n", 0, offset) + 1
    line = text[line_start:offset]
    return line[:len(line) - len(line.lstrip())]


def _dump(value, indent: str) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + indent)


def _insert_member(text: str, blank: str, object_start: int, name: str, value) -> str:
    """``text`` with ``"name": value`` added as the first member of the object at ``object_start``."""
    inner = members(blank, object_start)
    if inner:
        indent = _indent_of(text, inner[0][1])
        if not indent.strip() and "\n" not in text[object_start:inner[0][1]]:
            indent = ""  # a one-line object: keep it on one line
    else:
        indent = _indent_of(text, object_start) + "  "
    sep = "\n" + indent if indent or not inner else " "
    member = f'{json.dumps(name)}: {_dump(value, indent)}'
    if inner:
        return text[:object_start + 1] + sep + member + "," + text[object_start + 1:]
    close = blank.index("}", object_start)
    return text[:object_start + 1] + sep + member + "\n" + _indent_of(text, object_start) + text[close:]


def set_entry(text: str, key: str, name: str, entry: dict) -> str:
    """``text`` with ``root[key][name] = entry``; everything else unchanged."""
    if not text.strip():
        return json.dumps({key: {name: entry}}, indent=2, ensure_ascii=False) + "\n"
    blank = blank_comments(text)
    try:
        before = json.loads(blank)
        root = _skip(blank, 0)
        top = {m[0]: m for m in members(blank, root)}
        if key not in top:
            merged = _insert_member(text, blank, root, key, {name: entry})
        else:
            _, start, _ = top[key]
            servers = {m[0]: m for m in members(blank, start)}
            if name in servers:
                _, value_start, value_end = servers[name]
                merged = text[:value_start] + _dump(entry, _indent_of(text, value_start)) + text[value_end:]
            else:
                merged = _insert_member(text, blank, start, name, entry)
        after = json.loads(blank_comments(merged))
    except json.JSONDecodeError as exc:
        raise JsoncError(f"{exc.msg} at line {exc.lineno}") from None
    except (IndexError, AttributeError, TypeError):
        raise JsoncError(f"expected an object with an object under {key!r}") from None
    if not isinstance(before, dict) or not isinstance(before.get(key, {}), dict):
        raise JsoncError(f"expected an object with an object under {key!r}")
    before.setdefault(key, {})[name] = entry
    if after != before:
        raise JsoncError("the edit would change more than the sotalab entry")
    return merged


def loads(text: str):
    """Parse JSON with comments and trailing commas."""
    try:
        return json.loads(blank_comments(text)) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise JsoncError(f"{exc.msg} at line {exc.lineno}") from None

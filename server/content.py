"""A lab tool's result as MCP content: the JSON as text and as structured content, and
pictures (an output's ``images``, see tools/images.py) as image content, which hosts
show inline; their base64 is left out of the JSON so the model does not read it twice."""

from __future__ import annotations

import json

from fastmcp.tools.base import ToolResult
from mcp.types import ImageContent, TextContent


def _is_image(item) -> bool:
    return isinstance(item, dict) and str(item.get("mime_type", "")).startswith("image/") and isinstance(
        item.get("data"), str)


def to_tool_result(result: dict) -> ToolResult:
    images = [item for item in result.get("images") or [] if _is_image(item)] if isinstance(
        result.get("images"), list) else []
    blocks = [ImageContent(type="image", data=item["data"], mimeType=item["mime_type"]) for item in images]
    if images:
        result = {**result, "images": [{**item, "data": None} for item in result["images"]]}
    # UTF-8 as is, not \u escapes: the text stays as long as the result invoke bounded.
    text = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
    return ToolResult(content=[TextContent(type="text", text=text), *blocks], structured_content=result)

"""Pictures a tool returns.

A tool whose output model has a field ``images: list[Image]`` returns pictures. Called
as a plain function or from the CLI, the picture is in ``data`` (base64). Over MCP the
server sends each one as image content, which hosts show inline, and leaves ``data``
out of the structured result so the model does not read kilobytes of base64.
"""

from __future__ import annotations

import base64
import struct
from typing import Literal

from pydantic import BaseModel, Field

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Image(BaseModel):
    title: str = Field(description="what the picture shows")
    mime_type: Literal["image/png"] = "image/png"
    width: int = Field(description="pixels")
    height: int = Field(description="pixels")
    bytes: int = Field(description="size of the PNG")
    data: str | None = Field(None, description="the PNG, base64; over MCP it travels as image content instead "
                                               "and this is null")


def png_image(title: str, png: bytes) -> Image:
    """An Image from PNG bytes (the size is read from the PNG's header)."""
    if not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", png[16:24])
    return Image(title=title, width=width, height=height, bytes=len(png), data=base64.b64encode(png).decode())

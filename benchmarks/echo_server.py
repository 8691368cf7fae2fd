"""The reference for start-up and round-trip benchmarks: a bare fastmcp server with one
echo tool, started over stdio exactly like `sotalab serve`."""

from fastmcp import FastMCP

mcp = FastMCP("echo")


@mcp.tool
def echo(text: str) -> str:
    return text


if __name__ == "__main__":
    mcp.run("stdio", show_banner=False)

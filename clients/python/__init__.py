"""sotalab.client: scripted MCP sessions with the sotalab server (session.py) and the
end-to-end demo that drives the eight roles through them (demo.py)."""

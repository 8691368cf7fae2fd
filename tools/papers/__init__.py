"""Papers: search arXiv, fetch a paper once into the lab, read its text, tables and numbers.

``arxiv_api`` (rate-limited arXiv client), ``fetch`` (sources, safe download), ``extract``
(PDF to JSON, once), ``tables`` (detection, extraction, stitching), ``results`` (metric
cells), ``store`` (the cache and the ledger rows), ``tools`` (the MCP-facing tools).
"""

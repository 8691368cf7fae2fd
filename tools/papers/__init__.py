"""Papers: search arXiv, fetch a paper once into the lab, read its text, tables and numbers.

``arxiv_api`` (rate-limited arXiv client), ``fetch`` (sources, safe download), ``extract``
(PDF to JSON, once), ``identity`` (arXiv id, DOI, title and abstract from page 1),
``links`` (code links, the paper's own first), ``tables`` (layout regions, captions,
stitching), ``table_grid`` (one region's words to header, rows and cell boxes),
``results`` (metric cells, best candidate first), ``page_image`` (a page or region as a
bounded PNG), ``store`` (the cache and the ledger rows), ``tools`` (the MCP-facing tools).
"""

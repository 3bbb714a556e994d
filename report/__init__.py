"""The homework report's evidence, generated: every figure and number the report asks for, measured, in Markdown,
a self-contained HTML page and (with headless Chromium) a PDF. ``hw3_report.py`` is its command line."""

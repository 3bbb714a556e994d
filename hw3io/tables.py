"""Markdown tables, as the scripts print them and the report writes them."""


def markdown_table(headers, rows, align: str = "") -> str:
    """``align``: one letter per column, "l" (default) or "r"; a "|" inside a cell is escaped."""
    cell = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    rule = ["---:" if a == "r" else "---" for a in align.ljust(len(headers), "l")]
    lines = ["| " + " | ".join(map(cell, headers)) + " |", "| " + " | ".join(rule) + " |"]
    return "\n".join(lines + ["| " + " | ".join(map(cell, r)) + " |" for r in rows])

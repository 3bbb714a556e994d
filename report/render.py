"""One document, three forms: Markdown (figures linked), self-contained HTML (figures embedded) and a PDF printed by
headless Chromium. A document is a list of blocks:

  ("h", level, text) | ("p", text) | ("box", [lines]) | ("code", text) | ("table", headers, rows) |
  ("img", path, caption) | ("link", path, text) | ("discuss", [measured facts])

A "link" is a paragraph that links a file beside the report (relative, so the folder can move).

A "discuss" block is the student's place to write: a marked heading, the facts to start from, and a placeholder.
"""
import base64
import html
import io
import os
import shutil
import re
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

from hw3io import atomic_path, atomic_write_text, markdown_table

CHROMIUM_NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.7rem; } h2 { font-size: 1.35rem; border-bottom: 1px solid #ccc; margin-top: 2rem; }
h3 { font-size: 1.1rem; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.6rem 0; }
th, td { border: 1px solid #bbb; padding: 0.2rem 0.45rem; text-align: left; }
th { background: #f0f0f0; }
.box { border: 3px solid #1a5fb4; background: #eef4fc; padding: 0.6rem 1rem; margin: 1rem 0; }
.box p { margin: 0.25rem 0; }
.discuss { border: 2px dashed #c64600; background: #fff6ee; padding: 0.6rem 1rem; margin: 1rem 0; }
.discuss ul { margin: 0.3rem 0; } .discuss .write { color: #888; font-style: italic; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85rem; color: #555; }
pre { background: #f6f6f6; padding: 0.5rem; white-space: pre-wrap; font-size: 0.8rem; }
@media print { h2 { break-before: page; } h1 + h2 { break-before: avoid; }
               figure, table, .box { break-inside: avoid; } body { margin: 0; } }
"""


DISCUSS = "Your discussion:"
DISCUSS_HINT = "the facts measured above, to start from:"
WRITE_HERE = "(write your discussion here)"


MD_SPECIAL = re.compile(r"[][\\`*_<>]")  # would end a link's text, start emphasis, code or an HTML tag


def _href(path, base) -> str:
    """``path`` relative to the report's folder ``base``, percent-encoded for a Markdown or HTML link."""
    return urllib.parse.quote(Path(os.path.relpath(path, base)).as_posix())


def to_markdown(blocks, base: Path) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + b[2])
        elif kind == "p":
            out.append(b[1])
        elif kind == "box":
            out.append("\n".join("> " + ("**" + line + "**" if i == 0 else line) for i, line in enumerate(b[1])))
        elif kind == "code":
            out.append("```\n" + b[1] + "\n```")
        elif kind == "table":
            out.append(markdown_table(b[1], b[2]))
        elif kind == "img":
            out.append(f"![{b[2]}]({os.path.relpath(b[1], base)})\n\n*{b[2]}*")
        elif kind == "link":
            out.append("[" + MD_SPECIAL.sub(r"\\\g<0>", b[2]) + f"]({_href(b[1], base)})")
        elif kind == "discuss":
            out.append("\n".join([f"> **{DISCUSS}** {DISCUSS_HINT}", ">"] + [f"> - {p}" for p in b[1]] +
                                  [">", f"> *{WRITE_HERE}*"]))
    return "\n\n".join(out) + "\n"


EMBED_PNG_MAX = 400_000  # bytes; a larger figure (photo-like tiles) is embedded as JPEG to keep the page light


def _data_uri(path) -> str:
    data = Path(path).read_bytes()
    if len(data) <= EMBED_PNG_MAX:
        return "data:image/png;base64," + base64.b64encode(data).decode()
    from PIL import Image
    buf = io.BytesIO()
    with Image.open(path) as im:
        im.convert("RGB").save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def to_html(blocks, title: str, base: Path = Path(".")) -> str:
    """``base``: the folder the page is written to, which "link" blocks are relative to."""
    e = html.escape
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{e(b[1])}</p>")
        elif kind == "box":
            out.append('<div class="box">' + "".join(
                f"<p><b>{e(line)}</b></p>" if i == 0 else f"<p>{e(line)}</p>" for i, line in enumerate(b[1])) +
                "</div>")
        elif kind == "code":
            out.append(f"<pre>{e(b[1])}</pre>")
        elif kind == "table":
            head = "".join(f"<th>{e(str(h))}</th>" for h in b[1])
            body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "discuss":
            out.append(f'<div class="discuss"><p><b>{e(DISCUSS)}</b> {e(DISCUSS_HINT)}</p><ul>' +
                       "".join(f"<li>{e(p)}</li>" for p in b[1]) + f'</ul><p class="write">{e(WRITE_HERE)}</p></div>')
        elif kind == "link":
            out.append(f'<p><a href="{e(_href(b[1], base))}">{e(b[2])}</a></p>')
        elif kind == "img":
            out.append(f'<figure><img src="{_data_uri(b[1])}" alt="{e(b[2])}"><figcaption>{e(b[2])}</figcaption>'
                       "</figure>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_args(binary: str, profile: str) -> list[str]:
    """Headless, sandbox-free (we run as root in CI), and silent on a machine without internet."""
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}"]


def print_pdf(html_path: Path, pdf_path: Path, timeout: int = 120) -> Path | None:
    """Chromium's print-to-PDF of ``html_path``; None when no Chromium is installed."""
    binary = find_chromium()
    if binary is None:
        return None
    with tempfile.TemporaryDirectory() as profile, atomic_path(pdf_path) as tmp:
        subprocess.run(chromium_args(binary, profile) + ["--no-pdf-header-footer", f"--print-to-pdf={tmp}",
                                                         Path(html_path).resolve().as_uri()],
                       check=True, capture_output=True, timeout=timeout)
        if Path(tmp).stat().st_size == 0:
            raise RuntimeError("Chromium wrote an empty PDF")
    return pdf_path


def write_all(blocks, out_dir: Path, title: str, pdf: bool = True) -> dict:
    """report.md, report.html and (when Chromium is there) report.pdf in ``out_dir``."""
    md, page = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(md, to_markdown(blocks, out_dir))
    atomic_write_text(page, to_html(blocks, title, out_dir))
    return {"md": md, "html": page, "pdf": print_pdf(page, out_dir / "report.pdf") if pdf else None}

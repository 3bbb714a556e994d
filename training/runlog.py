"""What a run leaves for people: ``log.csv`` (one row per epoch, rewritten whole after each) and ``run.json``."""
import csv
import importlib
import io
import json

from hw3io import atomic_write_text


def write_log(path, history: list[dict], fields) -> None:
    """The epoch rows as CSV, rewritten whole (atomically) after every epoch."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: row[k] for k in fields})
    atomic_write_text(path, buf.getvalue())


def library_versions(*modules: str) -> dict:
    """torch, torchvision and ``modules`` (e.g. "timm"), as each reports its own ``__version__``."""
    return {m: importlib.import_module(m).__version__ for m in ("torch", "torchvision", *modules)}


def write_run_json(path, record: dict) -> None:
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")

"""Shared plumbing for both problems: image folders, RGB loading, atomic outputs, CLI errors, progress.

Names are imported lazily (PEP 562), so ``from hw3io import run_cli`` costs nothing: a script's ``--help`` and its
"package missing" error never wait for torch or matplotlib.
"""
import importlib

_WHERE = {
    "UserError": "errors", "run_cli": "errors", "brief": "errors", "describe_bytes": "errors",
    "IMAGE_EXTENSIONS": "images", "list_images": "images", "load_rgb": "images", "load_partial_rgb": "images",
    "check_readable": "images", "triage": "images", "stored_frame": "images", "orient": "images",
    "atomic_path": "atomic", "atomic_save_npy": "atomic", "atomic_write_text": "atomic",
    "ensure_writable_dir": "atomic",
    "pick_device": "device", "default_workers": "device",
    "upsample": "maps", "place": "maps", "pixel_region": "maps",
    "save_figure": "figures",
    "save_tensors": "tensors", "read_tensors": "tensors",
    "progress": "progress", "report": "progress",
    "write_vocab": "vocab", "SPECIAL_TOKENS": "vocab",
    "markdown_table": "tables",
    "read_json": "jsonfile",
}

__all__ = sorted(_WHERE)


def lazy_getattr(package: str, where: dict, namespace: dict):
    """A PEP 562 module ``__getattr__`` importing ``name`` from ``package.<where[name]>`` on first use (and caching it
    in ``namespace``); shared by the packages whose ``__init__`` must stay free of heavy imports."""
    def __getattr__(name):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{where[name]}", package), name)
        namespace[name] = value
        return value
    return __getattr__


__getattr__ = lazy_getattr(__name__, _WHERE, globals())


def __dir__():
    return __all__

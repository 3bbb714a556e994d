"""Shared plumbing for both problems: image folders, RGB loading, atomic outputs, CLI errors, progress.

Names are imported lazily (PEP 562), so ``from hw3io import run_cli`` costs nothing: a script's ``--help`` and its
"package missing" error never wait for torch or matplotlib.
"""
import importlib

_WHERE = {
    "UserError": "errors", "run_cli": "errors",
    "IMAGE_EXTENSIONS": "images", "list_images": "images", "load_rgb": "images", "check_readable": "images",
    "atomic_path": "atomic", "atomic_save_npy": "atomic", "atomic_write_text": "atomic",
    "ensure_writable_dir": "atomic",
    "pick_device": "device", "default_workers": "device",
    "upsample": "maps",
    "save_figure": "figures",
    "progress": "progress", "report": "progress",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'hw3io' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__

"""Shared plumbing for both problems: image folders, RGB loading, atomic outputs, CLI errors."""
from .errors import UserError, run_cli
from .images import IMAGE_EXTENSIONS, list_images, load_rgb, check_readable
from .atomic import atomic_path, atomic_save_npy, atomic_write_text, ensure_writable_dir
from .device import pick_device
from .maps import upsample
from .figures import save_figure

__all__ = ["UserError", "run_cli", "IMAGE_EXTENSIONS", "list_images", "load_rgb", "check_readable",
           "atomic_path", "atomic_save_npy", "atomic_write_text", "ensure_writable_dir", "pick_device", "upsample",
           "save_figure"]

"""CATR (saahiluppal/catr) re-implemented: a DETR-style captioner whose state dict loads official weights strictly.

backbone.py -> position_encoding.py -> transformer.py -> caption.py (``build_model``), then decode.py
(greedy decoding and per-token cross-attention), tokenizer.py, preprocess.py, visualize.py, pipeline.py;
data.py and train.py train it, metrics.py and pointing.py score what it says and where it looks.
Names are imported lazily (as in ``hw3io``), so ``catr.config`` costs no torch import.
"""
import importlib

_WHERE = {"CATRConfig": "config", "Caption": "caption", "build_model": "caption", "create_model": "caption"}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'catr' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value

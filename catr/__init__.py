"""CATR (saahiluppal/catr) re-implemented: a DETR-style captioner whose state dict loads official weights strictly.

backbone.py -> position_encoding.py -> transformer.py -> caption.py (``build_model``), then decode.py
(greedy decoding and per-token cross-attention), tokenizer.py, preprocess.py, visualize.py, pipeline.py;
data.py and train.py train it (pretrain.py first trains the tiny preset's CNN: its ImageNet), metrics.py and
pointing.py score what it says and where it looks.
Names are imported lazily (as in ``hw3io``), so ``catr.config`` costs no torch import.
"""
from hw3io import lazy_getattr

_WHERE = {"CATRConfig": "config", "Caption": "caption", "build_model": "caption", "create_model": "caption"}

__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE, globals())

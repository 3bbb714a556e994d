"""CATR (saahiluppal/catr) re-implemented: a DETR-style captioner whose state dict loads official weights strictly.

backbone.py -> position_encoding.py -> transformer.py -> caption.py (``build_model``), then decode.py
(greedy decoding and per-token cross-attention), tokenizer.py, preprocess.py, visualize.py, pipeline.py.
"""
from .config import CATRConfig
from .caption import Caption, build_model, create_model

__all__ = ["CATRConfig", "Caption", "build_model", "create_model"]

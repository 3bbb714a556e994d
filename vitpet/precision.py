"""Inference precision for Problem 1 (``p1_inference.py --precision``): fp32, the graded numbers ``hw3_1.sh``
gives; bf16, autocast around the same weights; int8, ``vitpet.quantize`` (CPU only).

Which one is fastest depends on the processor: bf16 pays off on a CPU with AVX512-BF16 or AMX (measured 3.6x fp32
at batch 8 on an Intel Xeon with AMX) and is slower than fp32 on one without them (an AMD EPYC with AVX2); int8
gains most with VNNI. ``speed_notice`` says so in one line, read from the CPU's flags (``hw3io.cpu``).
"""
import torch
from torch import nn

from hw3io import UserError
from hw3io.cpu import cpu_flags, fast_bf16, fast_int8
from training.precision import native_bf16
from .quantize import quantize_int8, require_cpu

PRECISIONS = ("fp32", "bf16", "int8")


class Autocast(nn.Module):
    """``model``'s features computed under bf16 autocast, its head (pooling, norm, classifier) in fp32, as int8
    keeps its classifier: bf16's 8-bit mantissa on the logits themselves flipped 5% of the tiny test model's
    near-tie predictions, against 0.7% with the head in fp32. Every op works image by image or per token (ViT has
    no batch statistics), so predictions do not depend on the batch size, as in fp32."""

    def __init__(self, model: nn.Module, device_type: str):
        super().__init__()
        self.model, self.device_type = model, device_type

    def forward(self, x):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            features = self.model.forward_features(x)
        return self.model.forward_head(features.float())


def with_precision(model: nn.Module, precision: str, device) -> nn.Module:
    """The model to predict with; ``model`` itself is left in fp32 (neither copy is ever saved in another
    precision)."""
    device = torch.device(device)
    if precision == "fp32":
        return model
    if precision == "bf16":
        return Autocast(model, device.type)
    if precision == "int8":
        return quantize_int8(model, device)
    raise UserError(f"unknown --precision {precision!r}: one of {', '.join(PRECISIONS)}")


def speed_notice(precision: str, device, flags=None) -> str | None:
    """One line when ``precision`` is slow on this device (``flags``: the CPU's, read when None), else None."""
    device = torch.device(device)
    if precision == "bf16" and device.type == "cuda" and not native_bf16(device):
        return ("note: this GPU emulates bf16 (compute capability below 8.0), which is slower than fp32: use the "
                "default --precision fp32")
    if device.type != "cpu" or precision == "fp32":
        return None
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return None  # not Linux: nothing to go by
    if precision == "bf16" and not fast_bf16(flags):
        return ("note: this CPU lacks avx512_bf16 and amx_bf16, so bf16 runs slower than fp32 here "
                "(bench/bench_p1_precision.py); --precision fp32 is faster")
    if precision == "int8" and not fast_int8(flags):
        return ("note: this CPU lacks VNNI (avx512_vnni, avx_vnni, amx_int8), so int8 gains less here: 1.41x fp32 "
                "measured on an AMD EPYC without it, 2.3x on an Intel Xeon with AMX (bench/bench_p1_precision.py)")
    return None


def int8_device(device: str, cuda_available: bool) -> tuple[str, str | None]:
    """int8 runs on the CPU: ``auto`` becomes cpu (with a note when a GPU goes unused); an explicit GPU is refused
    in one line, before anything is loaded."""
    if device == "auto":
        return "cpu", ("note: --precision int8 runs on the CPU; the GPU is not used" if cuda_available else None)
    require_cpu(device)
    return device, None

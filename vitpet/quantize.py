"""Opt-in int8 inference on the CPU (``p1_inference.py --precision int8``): a laptop's fast path, never the graded one.

Every ``nn.Linear`` but the classifier (together about 99% of ViT-B/16's FLOPs) becomes a dynamically quantized int8
Linear: int8 weights per output channel, activations quantized at run time, int32 accumulation (oneDNN kernels
through ``torch.ao.quantization.quantize_dynamic``). Its activation scale is computed over the whole input tensor,
which would couple the images of a batch (one image's outlier changes another's prediction), so each quantized
Linear runs image by image: scales are per image, and predictions do not depend on the batch size.

Why not torchao's ``Int8DynamicActivationInt8WeightConfig`` (per-token scales, the recommended successor)? On
this CPU it ran eager ViT-B/16 at 0.08 images/s against 1.6 for fp32 (0.05 compiled); see bench/bench_p1_precision.py.
Per-token scales emulated around torch.ao's kernels (each token mapped onto [-1, 1]) were exact too, but the extra
elementwise passes made them slower than running image by image.
"""
import copy
import warnings

import torch
from torch import nn

from hw3io import UserError

QUANTIZED_ATTR = "_vitpet_int8"  # marks a quantized copy, so it is never saved as a checkpoint
# oneDNN's int8 GEMM ran ViT-B/16 25-40% faster than fbgemm and "x86" on our AVX2 CPU (bench/bench_p1_precision.py).
PREFERRED_ENGINE = "onednn"


class PerImageLinear(nn.Module):
    """A dynamically quantized Linear run on one image at a time: (B, ..., in) -> (B, ..., out)."""

    def __init__(self, qlinear: nn.Module):
        super().__init__()
        self.qlinear = qlinear

    def forward(self, x):
        return torch.cat([self.qlinear(x[i:i + 1]) for i in range(x.shape[0])])


def require_cpu(device) -> None:
    if str(device).split(":")[0] != "cpu":
        raise UserError("--precision int8 runs on the CPU only (its kernels are oneDNN/fbgemm); on a GPU use the "
                        "default fp32, or add --device cpu")


def quantize_int8(model: nn.Module, device="cpu", engine: str | None = None) -> nn.Module:
    """An int8 copy of ``model`` for CPU inference; ``model`` itself is left as it was. Sets the process's quantized
    engine (``engine``, default oneDNN where available): the weights are packed for it and must run under it."""
    require_cpu(device)
    engine = engine or (PREFERRED_ENGINE if PREFERRED_ENGINE in torch.backends.quantized.supported_engines
                        else torch.backends.quantized.engine)
    torch.backends.quantized.engine = engine
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice: nothing a user can act on
        qmodel = copy.deepcopy(model).cpu().eval()
        # Per-channel weight scales (each output unit keeps its own range), and the classifier stays fp32: its
        # rounding lands directly on the logits, for 0.01% of the FLOPs. Each choice halved the fp32 disagreements
        # on the tiny test model.
        head = qmodel.get_classifier() if hasattr(qmodel, "get_classifier") else None
        spec = {name: per_channel_dynamic_qconfig for name, m in qmodel.named_modules()
                if isinstance(m, nn.Linear) and m is not head}
        qmodel = quantize_dynamic(qmodel, spec, dtype=torch.qint8)
    for module in list(qmodel.modules()):
        for child_name, child in list(module.named_children()):
            if type(child).__module__.startswith("torch.ao.nn.quantized.dynamic"):
                setattr(module, child_name, PerImageLinear(child))
    setattr(qmodel, QUANTIZED_ATTR, True)
    return qmodel


def is_quantized(model: nn.Module) -> bool:
    return bool(getattr(model, QUANTIZED_ATTR, False))

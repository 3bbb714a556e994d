"""Mixed precision for training: which dtype ``--amp`` means on this device, and why.

bf16 only where the GPU runs it natively (compute capability 8.0+, Ampere and newer): on a T4 or V100
``torch.cuda.is_bf16_supported()`` is True by default because bf16 is *emulated*, and emulated bf16 trains slower
than fp32. Elsewhere ``auto`` takes fp16 with a GradScaler. On the CPU ``auto`` is fp32 (training there is for tests
and demos) and ``bf16`` is CPU autocast. Evaluation always runs in fp32: the recorded number is the one a grader
reproduces with ``hw3_1.sh``.
"""
import contextlib

import torch

from hw3io import UserError

AMP_MODES = ("auto", "bf16", "fp16", "off")


def native_bf16(device: torch.device) -> bool:
    """Tensor-core bf16: compute capability 8.0 and up (what ``is_bf16_supported(including_emulation=False)``
    checks), read directly so a test can fake a T4 or an A100."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


def choose_amp(amp: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """(autocast dtype or None for fp32, the reason in a few words)."""
    if amp == "off":
        return None, "--amp off"
    if device.type != "cuda":
        if amp == "fp16":
            raise UserError("--amp fp16 needs a CUDA GPU; on the CPU use --amp bf16 or off")
        if amp == "bf16":
            return torch.bfloat16, "--amp bf16 (CPU autocast)"
        return None, "auto on the CPU: fp32"
    if amp == "bf16":
        return torch.bfloat16, "--amp bf16" + ("" if native_bf16(device) else " (emulated on this GPU: slow)")
    if amp == "fp16":
        return torch.float16, "--amp fp16 (GradScaler)"
    cap = "%d.%d" % torch.cuda.get_device_capability(device)
    if native_bf16(device):
        return torch.bfloat16, f"auto: native bf16 (compute capability {cap})"
    return torch.float16, f"auto: no native bf16 (compute capability {cap}), fp16 with a GradScaler"


def autocast(device: torch.device, dtype):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype) -> torch.amp.GradScaler:
    """fp16 needs loss scaling (its range underflows small gradients); bf16 and fp32 do not."""
    return torch.amp.GradScaler(device.type if device.type == "cuda" else "cpu", enabled=dtype == torch.float16)

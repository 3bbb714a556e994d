"""What this CPU can do fast, read from /proc/cpuinfo: bf16 and int8 inference pay off only with their instructions,
and every speed figure names the CPU it came from."""
from pathlib import Path

# The instruction sets that decide bf16 and int8 speed on x86 (oneDNN uses them when present).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
SHOWN_FLAGS = ("avx2", "avx512f", *INT8_FLAGS, *BF16_FLAGS)


def _cpuinfo(path="/proc/cpuinfo") -> dict:
    info = {}
    try:
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def cpu_flags(path="/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags; None where they cannot be read (not Linux)."""
    info = _cpuinfo(path)
    return set(info["flags"].split()) if "flags" in info else None


def fast_bf16(flags) -> bool:
    return bool(flags) and any(f in flags for f in BF16_FLAGS)


def fast_int8(flags) -> bool:
    return bool(flags) and any(f in flags for f in INT8_FLAGS)


def describe_cpu(path="/proc/cpuinfo") -> str:
    """One line for a benchmark's header: the model name and which of the relevant flags it has."""
    info, flags = _cpuinfo(path), cpu_flags(path)
    if flags is None:
        return "CPU: unknown (no /proc/cpuinfo)"
    has = [f for f in SHOWN_FLAGS if f in flags]
    lacks = [f for f in SHOWN_FLAGS if f not in flags]
    return f"CPU: {info.get('model name', 'unknown')}; has {' '.join(has) or 'none'}; lacks {' '.join(lacks) or 'none'}"

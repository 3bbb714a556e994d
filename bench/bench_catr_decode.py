"""Seconds per image: our decode (backbone + encoder once, decoder on the prefix, one pass for all maps) vs the
official per-token full-recompute loop, on the full ResNet-101 CATR with random weights.

Both are forced to the same caption length (random weights never emit [SEP]), so both do the same work.
Usage: python3 bench/bench_catr_decode.py [--tokens 16] [--size 299 224]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from catr import CATRConfig, build_model  # noqa: E402
from catr.decode import cross_attention, greedy_decode, naive_decode  # noqa: E402


def timed(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tokens", type=int, default=16, help="caption length both loops produce")
    p.add_argument("--size", type=int, nargs=2, default=(224, 299), help="resized image H W")
    p.add_argument("--repeat", type=int, default=2)
    a = p.parse_args()
    torch.manual_seed(0)
    model = build_model(CATRConfig()).eval()
    x = torch.randn(1, 3, *a.size)
    mask = torch.zeros(1, *a.size, dtype=torch.bool)
    start, end, n = 101, 102, a.tokens

    def ours():
        ids, ended, enc = greedy_decode(model, x, mask, start, end, max_len=n + 1, stop_at_end=False)
        return ids, cross_attention(model, enc, start, ids, ended, layer=-1)

    def naive():
        return naive_decode(model, x, mask, start, end, stop_at_end=False, max_tokens=n, layer=-1)

    with torch.no_grad():
        ours()  # warm-up
        t_ours, (ids_o, maps_o) = timed(ours, a.repeat)
        t_naive, (ids_n, _, maps_n) = timed(naive, 1)
    assert ids_o == ids_n and len(ids_o) == n, "the two loops must produce the same tokens"
    diff = (maps_o - maps_n).abs().max().item()
    print(f"CATR ResNet-101, image {a.size[0]}x{a.size[1]}, {n} tokens, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"  naive (official loop, 128 slots, full recompute per token): {t_naive:7.2f} s/image")
    print(f"  ours  (encode once, prefix decode, one pass for all maps):  {t_ours:7.2f} s/image")
    print(f"  speed-up {t_naive / t_ours:.1f}x   identical tokens: yes   max map difference {diff:.1e}")


if __name__ == "__main__":
    main()

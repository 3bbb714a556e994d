"""Seconds per image on the full ResNet-101 CATR with random weights: the encode floor (backbone + encoder, once per
image, what any decoder pays), our cached greedy decoding with all maps, beam search, and the official loop.

Random weights never emit [SEP], so every loop is forced to the same caption length and does the same work. Each
line ends in the decode's cost as a multiple of the encode floor. One image at a time, a decoding step reads every
decoder weight (about 100 MB in fp32, 62 MB of it the vocabulary head): memory bandwidth, not arithmetic, sets its
cost, and a batch of images (as ``hw3_2.sh`` decodes a folder) shares each read.
Usage: python3 bench/bench_catr_decode.py [--tokens 16 127] [--size 224 299] [--official-tokens 127]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hw3io.cpu import describe_cpu  # noqa: E402
from catr import CATRConfig, build_model  # noqa: E402
from catr.decode import (beam_decode, cross_attention, greedy_decode, greedy_decode_encoded, image_of,  # noqa: E402
                         naive_decode)


def timed(fn, repeat):
    """(best seconds of ``repeat`` runs, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, nargs="+", default=(16, 127), help="caption lengths to time")
    p.add_argument("--size", type=int, nargs=2, default=(224, 299), help="resized image H W")
    p.add_argument("--beam", type=int, default=3, help="beam width timed at the first caption length")
    p.add_argument("--official-tokens", type=int, nargs="*", default=(16, 127),
                   help="caption lengths at which to time the official loop too (slow: it re-runs everything)")
    p.add_argument("--batch", type=int, default=8, help="images per batch for the batched lines (0: none)")
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    torch.manual_seed(0)
    model = build_model(CATRConfig()).eval()
    x = torch.randn(1, 3, *a.size)
    mask = torch.zeros(1, *a.size, dtype=torch.bool)
    start, end = 101, 102
    print(describe_cpu())
    print(f"CATR ResNet-101 + 6+6 layers, random weights, image {a.size[0]}x{a.size[1]}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    with torch.no_grad():
        model.encode_image(x, mask)  # warm-up
        floor, _ = timed(lambda: model.encode_image(x, mask), a.repeat)
        print(f"  encode floor (backbone + encoder once): {floor:.3f} s/image")
        greedy_at = {}
        for n in a.tokens:
            def ours():
                ids, ended, enc = greedy_decode(model, x, mask, start, end, max_len=n + 1, stop_at_end=False)
                return ids, cross_attention(model, enc, start, ids, ended, layer=-1)
            t, (ids, maps) = timed(ours, a.repeat)
            assert len(ids) == n
            greedy_at[n] = (t, ids, maps)
            print(f"  {n:3d} tokens, cached greedy + all maps: {t:.3f} s/image, {t / floor:.1f}x the encode floor")
        if a.batch:
            xb, mb = x.expand(a.batch, -1, -1, -1).contiguous(), mask.expand(a.batch, -1, -1).contiguous()
            floor_b, _ = timed(lambda: model.encode_image(xb, mb), a.repeat)
            print(f"  batch of {a.batch}: encode floor {floor_b / a.batch:.3f} s/image")
            for n in a.tokens:
                def batched():
                    enc = model.encode_image(xb, mb)
                    out = greedy_decode_encoded(model, enc, start, end, max_len=n + 1)
                    return [cross_attention(model, image_of(enc, b), start, ids, e) for b, (ids, e) in enumerate(out)]
                t, _ = timed(batched, a.repeat)
                print(f"  batch of {a.batch}, {n:3d} tokens, cached greedy + all maps: {t / a.batch:.3f} s/image, "
                      f"{t / floor_b:.1f}x the encode floor")
        n = a.tokens[0]
        t, (ids, _, _) = timed(lambda: beam_decode(model, x, mask, start, end, beam=a.beam, max_len=n + 1), a.repeat)
        print(f"  {n:3d} tokens, beam {a.beam}: {t:.3f} s/image, {t / greedy_at[n][0]:.2f}x greedy, "
              f"{t / floor:.1f}x the encode floor")
        for n in a.official_tokens:
            if n not in greedy_at:
                continue
            t, (ids, _, maps) = timed(lambda: naive_decode(model, x, mask, start, end, stop_at_end=False,
                                                           max_tokens=n, layer=-1), 1)
            ours_t, ours_ids, ours_maps = greedy_at[n]
            same = ids == ours_ids
            diff = (maps - ours_maps).abs().max().item()
            print(f"  {n:3d} tokens, official loop (128 slots, everything re-run per token): {t:.2f} s/image; ours "
                  f"{t / ours_t:.1f}x faster; identical tokens: {'yes' if same else 'NO'}; max map difference "
                  f"{diff:.1e}")


if __name__ == "__main__":
    main()

"""Problem-1 inference throughput on CPU, ViT-B/16 (random init), N generated pet-size JPEGs (~500x375):

  pipeline : predict_folder (DataLoader workers decode + transform while the model runs)
  forward  : the model alone on pre-loaded, pre-transformed tensors (the ceiling)
  naive    : per image: open, transform, forward, one at a time

Each N runs in a fresh subprocess so its peak RSS is its own. Usage: python3 bench/bench_p1_inference.py [--n 24 48]
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hw3io.cpu import describe_cpu  # noqa: E402


def make_images(directory: Path, n: int):
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for i in range(n):
        w, h = (500, 375) if i % 3 else (375, 500)
        base = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)  # smooth-ish photo-like content
        Image.fromarray(base).resize((w, h), Image.BILINEAR).save(directory / f"{i % 37}_{i}.jpg", quality=90)


def worker(n: int, batch_size: int, model_name: str):
    import torch
    from hw3io import load_rgb
    from vitpet.data import build_transforms
    from vitpet.inference import predict_folder
    from vitpet.model import build_model, resolve_model_data_config

    torch.manual_seed(0)
    model = build_model(model_name, pretrained=False).eval()
    cfg = resolve_model_data_config(model)
    tf = build_transforms(cfg, is_training=False)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        make_images(d, n)
        with torch.no_grad():
            model(torch.randn(2, 3, 224, 224))  # warm-up
            t = time.perf_counter()
            df, *_ = predict_folder(model, cfg, d, batch_size=batch_size, show_progress=False)
            t_pipe = time.perf_counter() - t
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
            rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            paths = sorted(d.glob("*.jpg"))
            x = torch.stack([tf(load_rgb(p)) for p in paths])
            t = time.perf_counter()
            for i in range(0, n, batch_size):
                model(x[i:i + batch_size]).argmax(1)
            t_fwd = time.perf_counter() - t
            t = time.perf_counter()
            for p in paths:
                model(tf(load_rgb(p))[None]).argmax(1)
            t_naive = time.perf_counter() - t
    assert len(df) == n
    print(json.dumps({"n": n, "pipeline": n / t_pipe, "forward": n / t_fwd, "naive": n / t_naive,
                      "rss_mib": rss, "worker_rss_mib": rss_children}))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, nargs="+", default=[24, 48], help="image counts (one subprocess each)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--model", default="vit_base_patch16_224")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a.worker, a.batch_size, a.model)
    import torch
    print(describe_cpu())
    print(f"{a.model} (random init), batch {a.batch_size}, CPU, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"{'N':>5} {'pipeline':>10} {'forward':>10} {'naive':>10} {'pipe/fwd':>9} {'pipe/naive':>11} "
          f"{'peak RSS':>10} {'workers RSS':>12}")
    for n in a.n:
        out = subprocess.run([sys.executable, __file__, "--worker", str(n), "--batch-size", str(a.batch_size),
                              "--model", a.model], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{n:>5} {r['pipeline']:>8.2f}/s {r['forward']:>8.2f}/s {r['naive']:>8.2f}/s "
              f"{r['pipeline'] / r['forward']:>9.3f} {r['pipeline'] / r['naive']:>11.2f} "
              f"{r['rss_mib']:>7.0f} MiB {r['worker_rss_mib']:>8.0f} MiB")


if __name__ == "__main__":
    main()

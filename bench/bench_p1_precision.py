"""Problem-1 precisions on the CPU (p1_inference.py --precision fp32|bf16|int8), side by side in one run; the
header names the CPU and which of its flags decide the outcome (AVX512-BF16/AMX for bf16, VNNI for int8):

  forward  : ViT-B/16 (random init) on the same pre-transformed inputs, batch 1 and 8: fp32, bf16 autocast, our
             int8 (per-image activation scales, per-channel weights, fp32 classifier) under each quantized engine,
             plain torch.ao dynamic int8 (one activation scale per batch tensor) and, with --torchao, torchao's
             Int8DynamicActivationInt8WeightConfig
  pipeline : predict_folder on N generated 500x375 JPEGs at each precision (decoding must keep up)
  accuracy : the demo's trained tiny ViT (demo_out/p1, trained here first if absent) on its val folder:
             agreement of bf16 and int8 with fp32 predictions and the accuracy of each

Usage: python3 bench/bench_p1_precision.py [--n 48] [--torchao]
"""
import argparse
import copy
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_p1_inference import make_images  # noqa: E402
from bench.bench_p1_pointing import demo_flags  # noqa: E402
from hw3io.cpu import describe_cpu  # noqa: E402
from vitpet.precision import Autocast, with_precision  # noqa: E402
from vitpet.quantize import quantize_int8  # noqa: E402

TEST_IMAGES = 2169  # the course's test set


def rate(model, x, batch_size, reps=1):
    with torch.inference_mode():
        model(x[:batch_size])  # warm-up
        t = time.perf_counter()
        for _ in range(reps):
            for i in range(0, len(x), batch_size):
                model(x[i:i + batch_size])
        return reps * len(x) / (time.perf_counter() - t)


class Pinned(torch.nn.Module):
    """Runs a quantized model under the engine its weights were packed for."""

    def __init__(self, model, engine):
        super().__init__()
        self.model, self.engine = model, engine

    def forward(self, x):
        torch.backends.quantized.engine = self.engine
        return self.model(x)


def plain_torch_ao(model):
    """torch.ao's dynamic int8 as it comes: one activation scale per batch tensor (images of a batch coupled)."""
    from torch.ao.quantization import quantize_dynamic
    torch.backends.quantized.engine = "onednn"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def torchao_int8(model):
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    m = copy.deepcopy(model)
    quantize_(m, Int8DynamicActivationInt8WeightConfig())
    return m


def forward_table(use_torchao: bool):
    from vitpet.model import build_model
    torch.manual_seed(0)
    model = build_model("vit_base_patch16_224", pretrained=False).eval()
    x = torch.randn(16, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    variants = {"fp32": model, "bf16 autocast": Autocast(model, "cpu")}
    for engine in ("onednn", "fbgemm", "x86"):  # quantize_int8's default engine first, then the alternatives
        variants[f"int8 ours, {engine}"] = Pinned(quantize_int8(model, engine=engine), engine)
    variants["int8 torch.ao plain"] = Pinned(plain_torch_ao(model), "onednn")
    if use_torchao:
        variants["int8 torchao"] = torchao_int8(model)
    with torch.inference_mode():
        ref = model(x[:8])
    print(f"\nViT-B/16 forward, {torch.get_num_threads()} threads (images/s; max |logit - fp32| on 8 images)")
    print(f"{'variant':<22} {'batch 1':>9} {'batch 8':>9} {'vs fp32 b8':>11} {'max diff':>9}")
    rates = {}
    for name, m in variants.items():
        slow = name == "int8 torchao"
        b1 = rate(m, x[:2 if slow else 8], 1)
        b8 = rate(m, x[:8] if slow else x, 8)
        with torch.inference_mode():
            diff = (m(x[:8]) - ref).abs().max().item()
        rates[name] = b8
        print(f"{name:<22} {b1:>9.2f} {b8:>9.2f} {b8 / rates['fp32']:>10.2f}x {diff:>9.4f}")
    rates["bf16"], rates["int8"] = rates["bf16 autocast"], rates["int8 ours, onednn"]  # what --precision runs
    return model, rates


def pipeline_table(model, n: int, rates: dict):
    from vitpet.inference import predict_folder
    from vitpet.model import resolve_model_data_config
    cfg = resolve_model_data_config(model)
    print(f"\npredict_folder on {n} JPEGs (500x375), batch 8, default workers")
    with tempfile.TemporaryDirectory() as d:
        make_images(Path(d), n)
        for name in ("fp32", "bf16", "int8"):
            m = with_precision(model, name, "cpu")
            t = time.perf_counter()
            df, *_ = predict_folder(m, cfg, d, batch_size=8, show_progress=False)
            r = n / (time.perf_counter() - t)
            assert len(df) == n
            print(f"{name:<5} pipeline {r:6.2f} img/s = {r / rates[name]:.2f}x its forward alone; "
                  f"{TEST_IMAGES} test images in {TEST_IMAGES / r / 60:.1f} min")


def accuracy_table():
    from vitpet.data import ImageFolderDataset, build_transforms
    from vitpet.model import load_checkpoint
    demo = ROOT / "demo_out"
    ckpt = demo / "p1" / "best.safetensors"
    if not ckpt.is_file():
        print("\n(no demo_out/p1/best.safetensors: running the demo's Problem 1 training first)")
        subprocess.run([sys.executable, "-m", "synth.pets", str(demo / "data"), *demo_flags("synth.pets")], cwd=ROOT,
                       check=True)
        subprocess.run([sys.executable, "p1_train.py", "--data-dir", str(demo / "data"), "--output-dir",
                        str(demo / "p1"), *demo_flags("p1_train.py")], cwd=ROOT, check=True)
    model, cfg = load_checkpoint(ckpt)
    ds = ImageFolderDataset(demo / "data" / "val", build_transforms(cfg["data_config"], False), labelled=True)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor(ds.targets)
    with torch.inference_mode():
        ref = model(x).argmax(1)
        print(f"\ntrained demo ViT on its {len(ds)} val images: accuracy fp32 {(ref == y).float().mean():.4f}")
        for name in ("bf16", "int8"):
            got = with_precision(model, name, "cpu")(x).argmax(1)
            print(f"{name}: agrees with fp32 on {(ref == got).float().mean():.2%} ({int((ref != got).sum())} differ); "
                  f"accuracy {(got == y).float().mean():.4f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=48, help="JPEGs for the pipeline runs")
    p.add_argument("--torchao", action="store_true", help="also time torchao's int8 (installed separately; slow)")
    a = p.parse_args()
    print(describe_cpu())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, quantized engine "
          f"{torch.backends.quantized.engine}")
    model, rates = forward_table(a.torchao)
    pipeline_table(model, a.n, rates)
    accuracy_table()


if __name__ == "__main__":
    main()

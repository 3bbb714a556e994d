"""One prepared check of everything that differs on a CUDA machine; offline, under 5 minutes on one modern GPU.

    python3 scripts/gpu_check.py            # on a CUDA machine: the real ViT-B/16 and CATR architectures
    python3 scripts/gpu_check.py --cpu      # the same checks at toy sizes on the CPU (the test suite runs this)

Run it with whatever python3 holds torch there (timm, safetensors, pandas, matplotlib, tokenizers and tqdm too; no
pycocoevalcap needed): it creates no venv and installs nothing, and every script it starts runs under the same
interpreter. Prints one Markdown table: ViT training img/s per AMP mode, what ``--amp auto`` picks and why, the trainer's val
accuracy against ``p1_inference.py``'s, torchrun on every visible GPU (NCCL; gloo with --cpu) against one process,
resume after SIGTERM, CATR's official preset stepping under AMP, and ``hw3_1.sh`` / ``hw3_2.sh`` timed against the
course's 600 s. Random weights and generated images throughout: nothing is downloaded. Exit status 1 when a check
fails.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COURSE_LIMIT_S = 600
BATCH = 8              # the training runs' effective batch, split over the torchrun ranks
BF16_TOLERANCE = 0.05  # bf16 logits against fp32: largest difference over the largest fp32 logit, per image


@dataclass
class Sizes:
    """What one run checks at: the real thing on a GPU, toys on the CPU."""
    device: str
    vit: str                 # timm model trained and predicted (random weights)
    throughput_batch: int
    throughput_steps: int
    train_per_class: int     # generated pet images per class for the training runs
    test_images: int         # hw3_1.sh's folder (the course's test set has 2,169)
    captions: int            # hw3_2.sh's images
    catr_preset: str         # p2_train.py preset stepped under AMP
    catr_steps: int


GPU = Sizes("cuda", "vit_base_patch16_224", 32, 20, 8, 2169, 5, "catr", 4)
CPU = Sizes("cpu", "vit_demo_patch8", 8, 4, 2, 24, 2, "tiny", 2)


def python(*args) -> list[str]:
    """A command line that runs a repo script or module under this interpreter, not whatever `python3` is first on
    PATH (a half-made venv, another Python without torch)."""
    return [sys.executable, *map(str, args)]


def script_env(**env) -> dict:
    """The environment the scripts run in: offline, unbuffered, and this interpreter's folder first on PATH, so that
    the graded scripts' own `python3` is this one too (they use the repo's .venv only when its install finished)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", PATH=path, **env)


def run(args, **env):
    """A script as a user runs it; (seconds, completed process)."""
    t0 = time.time()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=COURSE_LIMIT_S,
                          env=script_env(**env))
    return time.time() - t0, proc


def ddp_split(gpus: int, batch: int = BATCH) -> tuple[int, int] | None:
    """(ranks, batch per rank) for the torchrun row: the most GPUs whose per-rank batches add up to exactly the
    single process's ``batch`` (3 GPUs: 2 ranks of 4; 12 GPUs: 8 ranks of 1); None when fewer than 2."""
    ranks = max(k for k in range(1, min(gpus, batch) + 1) if batch % k == 0) if gpus >= 1 else 1
    return (ranks, batch // ranks) if ranks >= 2 else None


def bf16_check(fp32_logits, bf16_logits, tolerance: float = BF16_TOLERANCE) -> tuple[float, list[bool]]:
    """(largest relative logit error over the images, which images have a clear fp32 margin). The error of an
    image is max |bf16 - fp32| / max |fp32|; within ``tolerance`` no logit moves by more than that share of the
    largest, so the argmax cannot change where the top-2 fp32 margin exceeds twice it: those images must agree.
    A near-chance model has tiny margins everywhere, so plain argmax agreement would test nothing but luck."""
    import torch
    scale = fp32_logits.abs().amax(1).clamp_min(1e-12)
    error = ((bf16_logits - fp32_logits).abs().amax(1) / scale).max().item()
    top2 = fp32_logits.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 2 * tolerance * scale
    return error, clear.tolist()


def must(proc, what):
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}")
    return proc


def train_throughput(sizes: Sizes) -> list[tuple]:
    """ViT training steps through the core's epoch loop on random batches, per AMP mode; img/s after a warm-up."""
    import torch
    from training.distributed import DistInfo
    from training.engine import classification_loss, train_one_epoch
    from training.precision import choose_amp, grad_scaler
    from training.schedule import StepSchedule
    from vitpet.model import build_model
    device = torch.device(sizes.device)
    modes = ("off", "bf16", "fp16") if device.type == "cuda" else ("off", "bf16")
    size = 224 if sizes.vit.endswith("224") else 64
    rows = []
    for amp in modes:
        torch.manual_seed(0)
        model = build_model(sizes.vit, 37, pretrained=False).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        dtype, why = choose_amp(amp, device)
        b = sizes.throughput_batch
        batches = [(torch.randn(b, 3, size, size), torch.randint(0, 37, (b,)), torch.arange(b))] * \
            (sizes.throughput_steps + 2)
        kw = dict(info=DistInfo(device=device), epoch=0, accum_steps=1, loss_fn=classification_loss(0.1),
                  clip_grad=1.0, amp_dtype=dtype)
        scaler = grad_scaler(device, dtype)
        sched = StepSchedule(opt, total=len(batches))
        train_one_epoch(model, batches[:2], opt, sched, scaler, step_in_epoch=0, steps_per_epoch=2, **kw)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.time()
        train_one_epoch(model, batches[2:], opt, sched, scaler, step_in_epoch=0,
                        steps_per_epoch=sizes.throughput_steps, **kw)
        if device.type == "cuda":
            torch.cuda.synchronize()
        ips = b * sizes.throughput_steps / (time.time() - t0)
        rows.append((f"train {sizes.vit}, batch {b}, --amp {amp}", f"{ips:.1f} img/s ({why})", "", True))
    dtype, why = choose_amp("auto", device)
    rows.append(("--amp auto picks", f"{dtype} ({why})", "native bf16 or fp16+scaler", True))
    return rows


def p1_runs(sizes: Sizes, work: Path, gpus: int) -> list[tuple]:
    """Train (val accuracy against p1_inference.py), torchrun against one process, SIGTERM and resume."""
    import safetensors.torch
    import torch
    from synth.pets import make_dataset
    data = make_dataset(work / "pets", train_per_class=sizes.train_per_class, val_per_class=1, seed=3)
    base = python("p1_train.py", "--data-dir", data, "--model", sizes.vit, "--no-pretrained", "--batch-size", BATCH,
                  "--lr", "1e-3", "--drop-path", "0", "--workers", "2", "--device", sizes.device)
    rows = []

    one = work / "one"
    secs, proc = run([*base, "--epochs", "2", "--deterministic", "--output-dir", str(one)])
    must(proc, "p1_train.py")
    logged = float(proc.stdout.split("best val accuracy ")[1].split(";")[0])
    _, pred = run(python("p1_inference.py", "--checkpoint", one / "best.safetensors", "--images", data / "val",
                         "--output", work / "val.csv", "--device", sizes.device))
    predicted = float(must(pred, "p1_inference.py").stdout.split("accuracy ")[1].split()[0])
    rows.append(("val accuracy: trainer (fp32 eval) vs p1_inference.py", f"{logged:.4f} vs {predicted:.4f}", "equal",
                 logged == predicted))
    rows.append(bf16_row(sizes, one / "best.safetensors", data / "val", work))

    split = ddp_split(gpus if sizes.device == "cuda" else 2)
    if split is not None:
        n, per_rank = split
        ddp = work / "ddp"
        dsecs, proc = run(python("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", n, *base[1:],
                                 "--epochs", "2", "--deterministic", "--batch-size", per_rank, "--output-dir", ddp),
                          OMP_NUM_THREADS="1")
        must(proc, "torchrun p1_train.py")
        a = safetensors.torch.load_file(str(one / "final.safetensors"))
        b = safetensors.torch.load_file(str(ddp / "final.safetensors"))
        diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        backend = "nccl" if sizes.device == "cuda" else "gloo"
        rows.append((f"torchrun {n} ranks ({backend}, batch {per_rank} each) vs 1 process, same effective batch",
                     f"max weight diff {diff:.1e}; {dsecs:.0f} s vs {secs:.0f} s", "diff < 1e-3", diff < 1e-3))
    else:
        rows.append(("torchrun on every visible GPU", f"{gpus} GPU visible: not run", "2+ GPUs", None))

    term = work / "term"
    p = subprocess.Popen([*base, "--epochs", "2", "--deterministic", "--output-dir", str(term)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=script_env())
    for line in p.stdout:
        if line.startswith("epoch 0:"):
            p.send_signal(signal.SIGTERM)
            break
    p.communicate(timeout=COURSE_LIMIT_S)
    stopped = p.returncode == 128 + signal.SIGTERM
    must(run([*base, "--epochs", "2", "--deterministic", "--resume", "auto", "--output-dir", term])[1], "resume")
    a = safetensors.torch.load_file(str(one / "final.safetensors"))
    b = safetensors.torch.load_file(str(term / "final.safetensors"))
    same = all(torch.equal(a[k], b[k]) for k in a)
    rows.append(("SIGTERM in epoch 1, --resume auto (--deterministic)",
                 f"stopped with state: {stopped}; bitwise equal to the uninterrupted run: {same}", "both",
                 stopped and same))
    return rows


def bf16_row(sizes: Sizes, checkpoint: Path, images: Path, work: Path) -> tuple:
    """p1_inference.py --precision bf16 against fp32: its logits (vitpet.precision, as the script wraps the model)
    within ``BF16_TOLERANCE`` of fp32's, and the script's predictions equal to fp32's wherever that bounds them."""
    import torch
    from torch.utils.data import DataLoader
    from vitpet.data import ImageFolderDataset, build_transforms
    from vitpet.model import load_checkpoint
    from vitpet.precision import with_precision
    device = torch.device(sizes.device)
    model, config = load_checkpoint(checkpoint, device=device)
    ds = ImageFolderDataset(images, build_transforms(config["data_config"], is_training=False), labelled=False)
    with torch.no_grad():
        x = torch.stack([ds[i][0] for i in range(len(ds))]).to(device)
        fp32 = torch.cat([model(b) for b in x.split(32)]).float().cpu()
        bf16_model = with_precision(model, "bf16", device)
        bf16 = torch.cat([bf16_model(b) for b in x.split(32)]).float().cpu()
    error, clear = bf16_check(fp32, bf16)
    _, proc = run(python("p1_inference.py", "--checkpoint", checkpoint, "--precision", "bf16", "--images", images,
                         "--output", work / "val_bf16.csv", "--device", sizes.device))
    must(proc, "p1_inference.py --precision bf16")
    fp32_csv, bf16_csv = ((work / f).read_text().splitlines()[1:] for f in ("val.csv", "val_bf16.csv"))
    names = [p.name for p in ds.paths]
    fp32_pred = dict(line.rsplit(",", 1) for line in fp32_csv)
    bf16_pred = dict(line.rsplit(",", 1) for line in bf16_csv)
    differ = sum(fp32_pred[n] != bf16_pred[n] for n, c in zip(names, clear) if c)
    return ("p1_inference.py --precision bf16 vs fp32",
            f"logit error {error:.3f} of the largest; {differ} of {sum(clear)} clear-margin predictions differ",
            f"<= {BF16_TOLERANCE}; 0 differ", error <= BF16_TOLERANCE and differ == 0)


def catr_steps(sizes: Sizes, work: Path) -> list[tuple]:
    """p2_train.py's preset (catr: ResNet-101 from random, 6+6 layers) for a few steps under --amp auto."""
    from synth.captionworld import write_split, write_vocab
    split = work / "world" / "train"
    write_split(split, 2 * sizes.catr_steps, seed=4)
    write_vocab(work / "world" / "vocab.txt")
    args = [sys.executable, "p2_train.py", "--preset", sizes.catr_preset, "--train-annotations",
            str(split / "captions.json"), "--train-images", str(split / "images"), "--val-annotations",
            str(split / "captions.json"), "--val-images", str(split / "images"), "--vocab",
            str(work / "world" / "vocab.txt"), "--epochs", "1", "--batch-size", "2", "--workers", "0",
            "--caption-eval-images", "0", "--amp", "auto", "--device", sizes.device, "--output-dir", str(work / "p2")]
    if sizes.catr_preset == "catr":
        args += ["--backbone-weights", "none"]
    secs, proc = run(args)
    must(proc, "p2_train.py")
    amp = proc.stdout.split(" amp ")[1].split(" (")[0]
    loss = proc.stdout.split("train_loss ")[1].split()[0]
    return [(f"p2_train.py --preset {sizes.catr_preset}, {sizes.catr_steps} steps of batch 2, --amp auto",
             f"amp {amp}, train loss {loss}, {secs:.0f} s with start-up", "finite loss", loss not in ("nan", "inf"))]


def graded_scripts(sizes: Sizes, work: Path) -> list[tuple]:
    """hw3_1.sh on the course's test-set size of 500x375 JPEGs and hw3_2.sh on a few, with random weights: the
    official CATR architecture never emits [SEP] at random, so every caption runs to the longest (128 tokens)."""
    import numpy as np
    import torch
    from PIL import Image
    from catr.caption import build_model
    from catr.config import ARCHITECTURES, CATRConfig
    from catr.train import save_caption_checkpoint
    from hw3io import write_vocab
    from vitpet.model import build_model as build_vit, resolve_model_data_config, save_checkpoint
    rng = np.random.default_rng(0)
    test = work / "test"
    test.mkdir()
    for k in range(sizes.test_images):
        Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(test / f"{k:05d}.jpg", quality=85)
    torch.manual_seed(0)
    vit = build_vit(sizes.vit, 37, pretrained=False)
    data_config = resolve_model_data_config(vit)
    save_checkpoint(work / "p1.safetensors", vit, {"model": sizes.vit, "num_classes": 37, "data_config": data_config,
                                                   "img_size": data_config["input_size"][-1]})
    secs1, proc = run(["bash", "hw3_1.sh", str(test), str(work / "pred.csv")],
                      P1_CHECKPOINT=str(work / "p1.safetensors"))
    must(proc, "hw3_1.sh")
    lines = (work / "pred.csv").read_text().count("\n") - 1

    preset = "catr" if sizes.device == "cuda" else "tiny"
    vocab = write_vocab(work / "vocab.txt", [f"w{i}" for i in range(200)])
    config = CATRConfig(**{**ARCHITECTURES[preset], "vocab_size": len(vocab.read_text().split())})
    save_caption_checkpoint(work / "catr.pth", build_model(config), config)
    few = work / "few"  # hw3_2.sh's folder: the first test images
    few.mkdir()
    for p in sorted(test.iterdir())[:sizes.captions]:
        (few / p.name).symlink_to(p)
    secs2, proc = run(["bash", "hw3_2.sh", str(few), str(work / "attn")], CATR_CHECKPOINT=str(work / "catr.pth"),
                      CATR_VOCAB=str(vocab))
    must(proc, "hw3_2.sh")
    pngs = len(list((work / "attn").glob("*.png")))
    return [(f"hw3_1.sh, {sizes.test_images} JPEGs 500x375, {sizes.vit}", f"{secs1:.0f} s, {lines} rows",
             f"< {COURSE_LIMIT_S} s", secs1 < COURSE_LIMIT_S and lines == sizes.test_images),
            (f"hw3_2.sh, {sizes.captions} images, {preset} CATR at random (longest captions)",
             f"{secs2:.0f} s, {pngs} PNGs", f"< {COURSE_LIMIT_S} s", secs2 < COURSE_LIMIT_S and pngs == sizes.captions)]


def environment(sizes: Sizes) -> tuple[str, int]:
    import torch
    if sizes.device == "cuda":
        n = torch.cuda.device_count()
        name = torch.cuda.get_device_name(0)
        cap = "%d.%d" % torch.cuda.get_device_capability(0)
        return f"{n} x {name} (compute capability {cap}), torch {torch.__version__}, CUDA {torch.version.cuda}", n
    return f"CPU ({os.cpu_count()} cores), torch {torch.__version__}", 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="toy sizes on the CPU (what the test suite runs)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    import torch
    if not args.cpu and not torch.cuda.is_available():
        print("error: no CUDA GPU here; run with --cpu for the toy-size check", file=sys.stderr)
        return 2
    sizes = CPU if args.cpu else GPU
    env, gpus = environment(sizes)
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        checks = (("throughput", lambda: train_throughput(sizes)), ("p1", lambda: p1_runs(sizes, work, gpus)),
                  ("catr", lambda: catr_steps(sizes, work)), ("graded", lambda: graded_scripts(sizes, work)))
        for name, check in checks:
            try:
                rows += check()
            except Exception as e:  # one failing check must not hide the others' rows
                rows.append((name, f"{type(e).__name__}: {' '.join(str(e).split())[:300]}", "runs", False))
            print(f"[{time.time() - t0:.0f} s] {name} done", file=sys.stderr, flush=True)
    print(f"\n{env}; {time.time() - t0:.0f} s in all\n")
    from hw3io import markdown_table
    print(markdown_table(("check", "result", "expected", "ok"),
                         [(*r[:3], "-" if r[3] is None else "yes" if r[3] else "NO") for r in rows]))
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": env, "rows": rows}, indent=1) + "\n")
    return 1 if any(ok is False for *_, ok in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

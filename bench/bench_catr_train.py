"""The tiny CATR preset on the caption world, as a user runs it: generate 2,000 training and 200 held-out scenes,
pretrain the ConvNet on the training scenes' boxes (``catr.pretrain``), train with p2_train.py's defaults from it
(both timed), caption the held-out scenes with hw3_2.sh, then score the captions and the pointing game with
``catr.pointing``. ``--no-pretrain`` trains from a random ConvNet instead, for comparison. ``--seeds 0 1 2`` pretrains
and trains once per seed on the same world and tabulates each seed and their mean and min-max: a recipe whose pointing
hinges on the seed (or on the CPU's last bits) shows a wide spread.

Targets (issues 9 and 17): pretraining plus training at most 5 minutes on 2 CPU cores; at least 95% of held-out
captions naming every object's colour and shape; object words' cross-attention peaking inside their object's box at
least 90% of the time at the default layer for every seed, next to the centre and random baselines.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from explanations.pointing import over_seeds  # noqa: E402
from hw3io import markdown_table  # noqa: E402
from hw3io.cpu import describe_cpu  # noqa: E402


def sh(args, **env):
    print("$", " ".join(str(a) for a in args), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run([str(a) for a in args], cwd=ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1", **env),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc.stdout, time.perf_counter() - t0


def run_seed(world, work, seed: int, pretrain: bool, explain: list) -> dict:
    """Pretrain, train, caption and score one seed in ``work``: its timings, caption and default-layer scores, and
    (``trust``) every method's row as ``catr.pointing --json`` saved it; ``explain``: catr.pointing's extra flags."""
    run, start, pretrain_s = work / "run", [], 0.0
    if pretrain:
        out, pretrain_s = sh([sys.executable, "-m", "catr.pretrain", "--images", world / "train" / "images",
                              "--objects", world / "train" / "objects.json", "--output", work / "convnet.safetensors",
                              "--seed", seed])
        print("\n".join(l for l in out.splitlines() if l.startswith("pretrain epoch")))
        start = ["--backbone-weights", work / "convnet.safetensors"]
    out, train_s = sh([sys.executable, "p2_train.py", "--preset", "tiny", *start, "--seed", seed,
                       "--train-annotations", world / "train" / "captions.json",
                       "--train-images", world / "train" / "images",
                       "--val-annotations", world / "val" / "captions.json", "--val-images", world / "val" / "images",
                       "--vocab", world / "vocab.txt", "--output-dir", run])
    print("\n".join(l for l in out.splitlines() if l.startswith(("training", "epoch"))))
    _, caption_s = sh(["bash", "hw3_2.sh", world / "val" / "images", work / "attn"],
                      CATR_CHECKPOINT=str(run / "checkpoint.pth"), CATR_VOCAB=str(run / "vocab.txt"))
    point = [sys.executable, "-m", "catr.pointing", work / "attn", "--objects", world / "val" / "objects.json",
             "--checkpoint", run / "checkpoint.pth", "--vocab", run / "vocab.txt"]
    scores, _ = sh([*point, "--captions", world / "val" / "captions.json", "--json", work / "pointing.json"])
    print(scores)
    trust = work / "pointing.json"
    if explain:  # every method on a subset; the targets above stay on every held-out scene
        trust = work / "trust.json"
        print(sh([*point, *explain, "--json", trust])[0])
    return dict(parse_scores(scores), pretrain_s=pretrain_s, train_s=train_s, caption_s=caption_s,
                trust=json.loads(trust.read_text()))


def parse_scores(text: str) -> dict:
    """catr.pointing's printout -> names_objects, and for the hw3_2.sh maps (the default layer's row, ``attention,
    layer k (hw3_2.sh's maps)``), every decoder layer's attention and the centre baseline: (strict, tolerance,
    mass in box)."""
    out = {"layers": {}}
    for line in text.splitlines():
        if "naming every object" in line:
            out["names_objects"] = float(line.rsplit(" ", 1)[1])
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not cells[1].replace(".", "").isdigit():
            continue
        scores = tuple(float(c) if c != "-" else float("nan") for c in cells[1:4])
        layer = re.match(r"attention, layer (-?\d+)", cells[0])
        if cells[0].endswith("(hw3_2.sh's maps)"):
            out["pointing"] = scores
        if layer:
            out["layers"][int(layer[1])] = scores
        elif cells[0].startswith("image centre"):
            out["centre"] = scores
    return out


def summary(results: dict) -> str:
    """Per seed and over seeds (mean, min-max): the targets' numbers and the time they took."""
    cols = [("names objects", lambda r: r["names_objects"]),
            ("strict (default layer)", lambda r: r["pointing"][0]),
            ("tolerance (15 px)", lambda r: r["pointing"][1]), ("mass in box", lambda r: r["pointing"][2]),
            ("centre baseline", lambda r: r["centre"][0]),
            ("pretrain + train s", lambda r: r["pretrain_s"] + r["train_s"])]
    layers = sorted({k for r in results.values() for k in r["layers"]})
    cols[4:4] = [(f"strict layer {k}", lambda r, k=k: r["layers"][k][0]) for k in layers]
    fmt = lambda v: f"{v:.0f}" if v >= 10 else f"{v:.3f}"  # noqa: E731
    rows = [(f"seed {s}", *(fmt(f(r)) for _, f in cols)) for s, r in results.items()]
    values = [[f(r) for r in results.values()] for _, f in cols]
    rows += [("mean", *(fmt(sum(v) / len(v)) for v in values)),
             ("min-max", *(f"{fmt(min(v))}-{fmt(max(v))}" for v in values))]
    return markdown_table(("", *(name for name, _ in cols)), rows, "l" + "r" * len(cols))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=2000)
    p.add_argument("--val", type=int, default=200)
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="pretrain and train once per seed on one world (default: 0)")
    p.add_argument("--no-pretrain", action="store_true", help="start the ConvNet at random, as before catr.pretrain")
    p.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temporary one)")
    p.add_argument("--faithfulness", action="store_true", help="also RISE, occlusion, deletion/insertion and the "
                   "randomisation check (catr.pointing --faithfulness)")
    p.add_argument("--limit", type=int, default=None, help="score N held-out scenes with every method (default: all)")
    p.add_argument("--masks", type=int, default=1000, help="RISE masks per scene (default: 1000)")
    a = p.parse_args(argv)
    explain = ["--faithfulness", "--masks", a.masks, *(["--limit", a.limit] if a.limit else [])] \
        if a.faithfulness else []
    print(describe_cpu(), flush=True)
    work = Path(a.keep or tempfile.mkdtemp(prefix="bench-catr-"))
    world = work / "world"
    sh([sys.executable, "-m", "synth.captionworld", world, "--train", a.train, "--val", a.val])
    results = {s: run_seed(world, work / f"seed{s}", s, not a.no_pretrain, explain) for s in a.seeds}
    for s, r in results.items():
        print(f"seed {s}: catr.pretrain {r['pretrain_s']:.0f} s + p2_train.py --preset tiny {r['train_s']:.0f} s = "
              f"{r['pretrain_s'] + r['train_s']:.0f} s wall on {a.train} scenes (target: 300 s or less) on "
              f"{os.cpu_count()} CPUs; hw3_2.sh on {a.val} held-out scenes: {r['caption_s']:.0f} s")
    print(summary(results))
    words = ", ".join(str(r["trust"]["baseline"]["count"]) for r in results.values())
    print(f"\nevery method, mean (min-max) over seeds {' '.join(map(str, results))} (object words per seed: {words})")
    print(over_seeds({s: r["trust"]["rows"] for s, r in results.items()},
                     {s: r["trust"]["baseline"] for s, r in results.items()}))
    if a.keep:
        print(f"kept {work}")


if __name__ == "__main__":
    main()

"""Problem 1's pointing game across seeds: the demo's recipe (a tiny ViT from scratch on the generated pet folders,
as scripts/demo.sh trains it) once per seed, then ``vitpet.pointing`` on the held-out images: strict, tolerance
(TorchRay's 15 px, class mean) and mass in box for the last layer's head-mean CLS attention and for rollout, per
seed and as mean and spread, beside the val accuracy. The data are generated once and shared by the seeds.

Usage: python3 bench/bench_p1_pointing.py [--seeds 0 1 2] [--keep DIR]
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hw3io import list_images, markdown_table  # noqa: E402
from explanations.pointing import over_seeds  # noqa: E402
from hw3io.cpu import describe_cpu  # noqa: E402

COLUMNS = ("maps", "tolerance", "mass")
FAITHFULNESS = ("deletion", "insertion", "randomisation")


def demo_flags(program: str, script=ROOT / "scripts" / "demo.sh") -> list[str]:
    """The flags scripts/demo.sh gives ``program`` ("p1_train.py", or "synth.pets" for the data), less its folders:
    the benches measure the demo's own recipe, not a copy that could drift from it."""
    for command in script.read_text().replace("\\\n", " ").splitlines():
        args = shlex.split(command, comments=True)
        if program in args[1:3]:
            flags = args[args.index(program) + 1:]
            if flags and not flags[0].startswith("-"):  # the output folder
                del flags[0]
            for name in ("--data-dir", "--output-dir"):
                if name in flags:
                    i = flags.index(name)
                    del flags[i:i + 2]
            return flags
    sys.exit(f"no {program} command in {script}")


def sh(args):
    proc = subprocess.run([str(a) for a in args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, args))}\n{proc.stderr.strip()[-800:]}")
    return proc.stdout


def play(run: Path, val: Path, faithfulness: bool, limit: int | None, masks: int) -> dict:
    from explanations.pointing import spread
    from vitpet.model import load_checkpoint
    from vitpet.pointing import pointing_game, read_boxes
    boxes = read_boxes(val / "boxes.json")
    model, config = load_checkpoint(run / "best.safetensors")
    images = [p for p in list_images(val) if p.name in boxes]
    images = spread(images, limit)
    return pointing_game(model, config["data_config"], images, boxes, faithfulness=faithfulness, masks=masks)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temporary one)")
    p.add_argument("--faithfulness", action="store_true", help="also RISE, occlusion, deletion/insertion and the "
                   "randomisation check (vitpet.pointing --faithfulness)")
    p.add_argument("--limit", type=int, default=None, help="score N held-out images (default: all)")
    p.add_argument("--masks", type=int, default=1000, help="RISE masks per image (default: 1000)")
    a = p.parse_args()
    columns = COLUMNS + (FAITHFULNESS if a.faithfulness else ())
    print(describe_cpu())
    work = Path(a.keep or tempfile.mkdtemp(prefix="bench-p1-pointing-"))
    data, pets, recipe = work / "data", demo_flags("synth.pets"), demo_flags("p1_train.py")
    made_with = data / "synth.pets.flags"  # a kept folder is reused only for the demo's current data flags
    if not (data / "val" / "boxes.json").is_file():
        sh([sys.executable, "-m", "synth.pets", data, *pets])
        made_with.write_text(" ".join(pets) + "\n")
    elif not made_with.is_file() or made_with.read_text().split() != pets:
        sys.exit(f"{data} was generated with other flags than the demo's ({' '.join(pets)}): use a new --keep folder")
    rows, per_seed = [], {}
    for seed in a.seeds:
        run = work / f"seed{seed}"
        if not (run / "run.json").is_file():  # with --keep, a seed already trained is scored again, not retrained
            sh([sys.executable, "p1_train.py", "--data-dir", data, "--output-dir", run, *recipe, "--seed", seed])
        record = json.loads((run / "run.json").read_text())
        accuracy, seconds = record["best_val_acc"], record["train_seconds"]
        per_seed[seed] = scores = play(run, data / "val", a.faithfulness, a.limit, a.masks)
        for name, s in scores.items():
            rows.append((seed, name, f"{accuracy:.4f}", *(f"{s[c]:.3f}" for c in columns), f"{seconds:.0f}"))
        print(f"seed {seed}: trained in {seconds:.0f} s, val accuracy {accuracy:.4f}", flush=True)
    names = ("strict", "tolerance (15 px)", "mass in box") + (FAITHFULNESS if a.faithfulness else ())
    headers = ("seed", "map", "val acc", *names, "train s")
    print("\n" + markdown_table(headers, rows, "ll" + "r" * (len(headers) - 2)))
    first = next(iter(per_seed.values()))
    print(f"\nmean (min-max) over seeds {' '.join(map(str, per_seed))}, {first[next(iter(first))]['count']} "
          "held-out images")
    print(over_seeds(per_seed, {s: next(iter(r.values())) for s, r in per_seed.items()}))
    if a.keep:
        print(f"kept {work}")


if __name__ == "__main__":
    main()

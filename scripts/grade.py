"""``make grade``: the graders' run, simulated on this machine.

Clone the repository (its last commit) into a scratch folder; serve the demo's trained checkpoint, its caption
model and its vocabulary over loopback HTTP (standing in for the model link, the CATR release and the Hugging Face
hub); record the model link with ``p1_publish.py``; then, from another working directory, with empty caches and
nothing in the environment but ``PATH``, ``HOME`` and the loopback endpoints, run ``bash hw3_1.sh`` on the demo's
val folder and ``bash hw3_2.sh`` on its caption images. Checks the outputs and prints a table with the course's
limit. Exit status 1 when any check fails.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.loopback import LoopbackServer, hub_path  # noqa: E402
from vitpet.model import read_checkpoint  # noqa: E402
from vitpet.publish import sha256_file  # noqa: E402

LIMIT_S = 600  # the course: each script finishes within 10 minutes


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo-dir", default=str(ROOT / "demo_out"), help="outputs of `make demo`")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder and print its path")
    return p


def run_timed(cmd, env, cwd):
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=LIMIT_S)
    return proc, time.perf_counter() - t0


P2_HANDOUT = 8


def main(argv=None) -> int:
    a = get_args_parser().parse_args(argv)
    demo = Path(a.demo_dir).resolve()
    p1_ckpt, p1_val = demo / "p1" / "best.safetensors", demo / "data" / "val"
    p2_ckpt, p2_vocab = demo / "p2" / "checkpoint.pth", demo / "p2" / "vocab.txt"
    p2_images = demo / "world" / "val" / "images"
    missing = [str(p) for p in (p1_ckpt, p1_val, p2_ckpt, p2_vocab, p2_images) if not p.exists()]
    if missing:
        print(f"error: run `make demo` first; missing {', '.join(missing)}", file=sys.stderr)
        return 2
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                      text=True).stdout.strip():
        print("note: uncommitted changes are not graded; the clone holds the last commit")

    scratch = Path(tempfile.mkdtemp(prefix="hw3-grade-"))
    failures, rows = [], []

    def check(ok, what):
        if not ok:
            failures.append(what)

    try:
        repo, work, home = scratch / "repo", scratch / "work", scratch / "home"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(repo)], check=True)
        work.mkdir()
        home.mkdir()
        handout = scratch / "p2_images"  # a handful of held-out scenes, as the course hands out a few test images
        handout.mkdir()
        for img in sorted(p2_images.iterdir())[:P2_HANDOUT]:
            shutil.copy(img, handout / img.name)
        p2_images = handout
        files = {"/models/p1_vit_b16.safetensors": p1_ckpt, "/catr/weights.pth": p2_ckpt,
                 hub_path("google-bert/bert-base-uncased", "vocab.txt"): p2_vocab}
        with LoopbackServer(files) as server:
            pub = subprocess.run([sys.executable, str(repo / "p1_publish.py"), "--checkpoint", str(p1_ckpt),
                                  "--url", server.url("/models/p1_vit_b16.safetensors")], capture_output=True,
                                 text=True)
            check(pub.returncode == 0, f"p1_publish.py failed: {pub.stderr.strip()[-300:]}")
            checked = server.hits["/models/p1_vit_b16.safetensors"]  # p1_publish.py downloads the link once
            # What a grader has: python3 on PATH with the requirements installed, a home with empty caches. The two
            # URLs replace the model link recorded in checkpoints/p1.url's place on the internet, the hub and the
            # CATR release.
            env = {"PATH": os.environ["PATH"], "HOME": str(home), "HF_ENDPOINT": server.base,
                   "CATR_CHECKPOINT_URL": server.url("/catr/weights.pth")}

            csv = work / "pred.csv"
            p1, t1 = run_timed(["bash", str(repo / "hw3_1.sh"), str(p1_val), "pred.csv"], env, work)
            n1 = len(list(p1_val.glob("*.jpg")))
            check(p1.returncode == 0, f"hw3_1.sh exit {p1.returncode}: {p1.stderr.strip()[-500:]}")
            if p1.returncode == 0:
                df = pd.read_csv(csv)
                check(list(df.columns) == ["filename", "label"], "hw3_1.sh: CSV columns are not filename,label")
                check(sorted(df["filename"]) == sorted(p.name for p in p1_val.glob("*.jpg")),
                      "hw3_1.sh: CSV does not list every image once")
                truth = df["filename"].str.split("_").str[0].astype(int)
                acc = float((df["label"] == truth).mean())
                expected = read_checkpoint(p1_ckpt)[1]["val_acc"]
                check(abs(acc - expected) < 1e-9, f"hw3_1.sh accuracy {acc:.4f} != checkpoint's val_acc {expected:.4f}")
                downloaded = repo / "checkpoints" / "p1_vit_b16.safetensors"
                check(downloaded.is_file() and sha256_file(downloaded) == sha256_file(p1_ckpt),
                      "hw3_1.sh: the downloaded model is not the published one")
            rows.append(("hw3_1.sh", n1, t1, p1.returncode == 0))

            again, t1b = run_timed(["bash", str(repo / "hw3_1.sh"), str(p1_val), "pred2.csv"], env, work)
            check(again.returncode == 0 and server.hits["/models/p1_vit_b16.safetensors"] == checked + 1,
                  "hw3_1.sh downloaded the model again instead of reusing the verified copy")
            rows.append(("hw3_1.sh (model kept)", n1, t1b, again.returncode == 0))

            out2 = work / "p2"
            p2, t2 = run_timed(["bash", str(repo / "hw3_2.sh"), str(p2_images), "p2"], env, work)
            n2 = len([p for p in p2_images.iterdir() if p.is_file()])
            check(p2.returncode == 0, f"hw3_2.sh exit {p2.returncode}: {p2.stderr.strip()[-500:]}")
            if p2.returncode == 0:
                for img in sorted(p2_images.iterdir()):
                    png = out2 / f"{img.stem}.png"
                    ok = png.is_file()
                    if ok:
                        with Image.open(png) as im:
                            ok = im.format == "PNG" and im.width >= 300 and im.height >= 200
                    check(ok, f"hw3_2.sh: no valid {png.name}")
                check(server.hits[hub_path("google-bert/bert-base-uncased", "vocab.txt")] == 1,
                      "hw3_2.sh did not fetch the vocabulary from the hub endpoint")
            rows.append(("hw3_2.sh", n2, t2, p2.returncode == 0))
    finally:
        if a.keep:
            print(f"scratch folder kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    from hw3io import markdown_table
    print("\n" + markdown_table(("script", "images", "seconds", "course limit", "passed"),
                                [(name, n, f"{secs:.1f}", f"{LIMIT_S} s", "yes" if ok and secs < LIMIT_S else "NO")
                                 for name, n, secs, ok in rows], "lrrrl"))
    for f in failures:
        print(f"FAILED: {f}")
    print("grade: " + ("all checks passed" if not failures else f"{len(failures)} check(s) failed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

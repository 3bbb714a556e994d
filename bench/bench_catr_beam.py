"""Beam search against greedy decoding on held-out captions, side by side in one run: p2_caption_attn.py with
--beam 1 (hw3_2.sh's greedy) and --beam K on the same checkpoint and images, each scored for exact match against
the references and by the COCO caption evaluation (catr.metrics; without Java, so the numbers do not depend on
the machine having it), with the seconds each took.

By default it takes the demo's tiny CATR and its held-out caption-world scenes (``make demo`` writes them); any
checkpoint, vocabulary, image folder and COCO captions file can be passed instead.

Usage: python3 bench/bench_catr_beam.py [--beams 3 5] [--checkpoint CKPT --vocab VOCAB --images DIR --captions JSON]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from catr.metrics import caption_metrics, folder_captions, read_references, split_words  # noqa: E402
from hw3io import markdown_table  # noqa: E402
from hw3io.cpu import describe_cpu  # noqa: E402

DEMO = ROOT / "demo_out"


def caption(args, beam: int, out: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "p2_caption_attn.py", "--images", args.images, "--output-dir", out,
                           "--checkpoint", args.checkpoint, "--vocab", args.vocab, "--beam", str(beam),
                           "--length-penalty", str(args.length_penalty), "--device", "cpu"],
                          cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if proc.returncode != 0:
        sys.exit(f"p2_caption_attn.py --beam {beam} failed: {proc.stderr.strip()[-600:]}")
    return time.perf_counter() - t0


def score(out: Path, refs: dict, ids_by_name: dict) -> dict:
    results = {ids_by_name[name]: caption for name, caption in folder_captions(out).values()}
    exact = sum(split_words(c) in [split_words(r) for r in refs[k]] for k, c in results.items()) / len(results)
    return {"exact": exact, **caption_metrics(results, {k: refs[k] for k in results}, java=False)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--beams", type=int, nargs="+", default=[3], help="beam widths beside greedy (default: 3)")
    p.add_argument("--length-penalty", type=float, default=1.0)
    p.add_argument("--checkpoint", default=str(DEMO / "p2" / "checkpoint.pth"))
    p.add_argument("--vocab", default=str(DEMO / "p2" / "vocab.txt"))
    p.add_argument("--images", default=str(DEMO / "world" / "val" / "images"))
    p.add_argument("--captions", default=str(DEMO / "world" / "val" / "captions.json"))
    a = p.parse_args()
    if not Path(a.checkpoint).is_file():
        sys.exit(f"no checkpoint at {a.checkpoint}: run `make demo` first, or pass --checkpoint, --vocab, --images "
                 "and --captions")
    print(describe_cpu())
    refs, ids_by_name = read_references(a.captions)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for beam in [1, *a.beams]:
            out = Path(work) / f"beam{beam}"
            seconds = caption(a, beam, out)
            s = score(out, refs, ids_by_name)
            n = len(list(out.glob("*.json")))
            rows.append(("greedy" if beam == 1 else f"beam {beam}", f"{s['exact']:.3f}", f"{s['BLEU-4']:.3f}",
                         f"{s['CIDEr-D']:.3f}", f"{seconds / n:.3f}"))
    print(f"\n{n} held-out images from {a.images}; length penalty {a.length_penalty:g} (GNMT)")
    print(markdown_table(("decoding", "exact match", "BLEU-4", "CIDEr-D", "s/image (process)"), rows, "lrrrr"))


if __name__ == "__main__":
    main()

"""Predict the class of every image in a folder and write ``filename,label`` CSV."""
import argparse
import sys

from hw3io.errors import run_cli


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint written by p1_train.py")
    p.add_argument("--images", required=True, help="folder of images (any file names)")
    p.add_argument("--output", required=True, help="CSV to write (parent folders are created)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    p.add_argument("--workers", type=int, default=None, help="data-loader workers (default: min(4, CPUs))")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8"),
                   help="fp32 (default; the graded numbers, as hw3_1.sh), bf16 (autocast: 3.6x fp32 at batch 8 on "
                        "an Intel Xeon with AMX, slower than fp32 on CPUs without AVX512-BF16/AMX) or int8 (CPU only: "
                        "dynamic int8 Linear layers, 1.41x fp32 on an AMD EPYC without VNNI, 2.3x with AMX); "
                        "measured by bench/bench_p1_precision.py; check --eval accuracy on val before trusting them")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="exit 0 when some images do not decode (they are always left out of the CSV, named on stderr, "
                        "and otherwise make the exit status 1)")
    p.add_argument("--eval", action=argparse.BooleanOptionalAction, default=None,
                   help="print accuracy from the labels in the file names (default: when every name has one)")
    return p


def main(argv=None):
    a = get_args_parser().parse_args(argv)
    from vitpet.inference import run_inference
    r = run_inference(a.checkpoint, a.images, a.output, batch_size=a.batch_size, workers=a.workers, device=a.device,
                      evaluate=a.eval, precision=a.precision)
    print(f"wrote {r['count']} predictions to {r['output']}")
    for path in r["partial"]:
        print(f"warning: {path} is truncated: predicted from the part that decodes", file=sys.stderr)
    if "accuracy" in r:
        print(f"accuracy {r['accuracy']:.4f}" + (" (over the images that decode)" if r["skipped"] else ""))
    if r["skipped"]:
        listing = "; ".join(r["reasons"])
        print(f"{'note' if a.skip_unreadable else 'error'}: {len(r['skipped'])} image(s) do not decode and have no "
              f"line in {r['output']} (every other image has its prediction): {listing}", file=sys.stderr)
        return 0 if a.skip_unreadable else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))

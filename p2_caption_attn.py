"""Caption images with CATR and draw each generated token's decoder cross-attention (one tiled PNG per image)."""
import argparse
import sys

from hw3io import run_cli


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", required=True, help="folder of images")
    p.add_argument("--output-dir", required=True, help="writes <stem>.png, <stem>.npy (maps) and <stem>.txt")
    p.add_argument("--checkpoint", default=None, help="official CATR .pth file (default: $CATR_CHECKPOINT, "
                                                      "else download --version into the torch hub cache)")
    p.add_argument("--version", default="v3", choices=("v1", "v2", "v3"), help="official release (default: v3)")
    p.add_argument("--vocab", default=None, help="BERT uncased vocab.txt (default: $CATR_VOCAB, else HF cache)")
    p.add_argument("--layer", type=int, default=-1,
                   help="decoder layer whose cross-attention is drawn, 0-based; -1 last (default), -2 second-to-last")
    p.add_argument("--heads", action="store_true", help="keep per-head maps in the .npy (the PNG shows their mean)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    return p


def main(argv=None):
    from catr.pipeline import caption_folder
    from hw3io import pick_device
    a = get_args_parser().parse_args(argv)
    written = caption_folder(a.images, a.output_dir, checkpoint=a.checkpoint, version=a.version, vocab=a.vocab,
                             layer=a.layer, heads=a.heads, device=pick_device(a.device))
    print(f"wrote {len(written)} PNG(s) to {a.output_dir}")


if __name__ == "__main__":
    sys.exit(run_cli(main))

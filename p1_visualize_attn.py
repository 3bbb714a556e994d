"""Overlay the ViT's CLS-token attention (last layer, head mean by default) on images; for a model without a class
token (global average pooling), the mean over the patch queries of their attention to each patch."""
import argparse
import sys

from hw3io.errors import run_cli
from vitpet.config import add_explained_model_args

DEFAULT_IMAGES = ["hw3_data/p1_data/val/26_5064.jpg", "hw3_data/p1_data/val/29_4718.jpg",
                  "hw3_data/p1_data/val/31_4838.jpg"]


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__)
    add_explained_model_args(p)
    p.add_argument("--images", nargs="+", default=DEFAULT_IMAGES, help="images to explain (default: the spec's three)")
    p.add_argument("--output-dir", default="attn", help="one <stem>.png and <stem>.npy per image")
    p.add_argument("--layer", type=int, default=-1, help="block index, 0-based; negative counts from the end")
    p.add_argument("--heads", action="store_true", help="one map per head plus the mean")
    p.add_argument("--rollout", action="store_true", help="attention rollout over all layers")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    return p


def main(argv=None):
    a = get_args_parser().parse_args(argv)
    from hw3io import pick_device
    from vitpet.explain import visualize_attention
    for path in visualize_attention(a.images, a.output_dir, checkpoint=a.checkpoint, model_name=a.model,
                                    layer=a.layer, heads=a.heads, use_rollout=a.rollout,
                                    device=pick_device(a.device), pretrained_file=a.pretrained_file,
                                    img_size=a.img_size):
        print(path)


if __name__ == "__main__":
    sys.exit(run_cli(main))

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
    p.add_argument("--all-layers", action="store_true",
                   help="also write <stem>.layers.npy: every block's per-head maps (attention only), for --html")
    p.add_argument("--html", action="store_true",
                   help="also write <stem>.json and index.html, a self-contained page to browse the maps by image, "
                        "layer and head")
    p.add_argument("--method", default="attention", choices=("attention", "rollout", "relevance", "attribution", "rise",
                                                         "occlusion"),
                   help="attention (default: the homework's map, CLS attention of --layer), rollout (attention "
                        "rollout over all layers), or a map of the predicted class's log-probability: relevance "
                        "(Chefer et al. ICCV 2021, gradient-weighted attention), attribution (Chefer et al. CVPR 2021, "
                        "LRP-weighted), rise (random masks) or occlusion (one patch at a time); the same PNG and .npy "
                        "layout for each")
    p.add_argument("--rollout", action="store_true", help="the same as --method rollout")
    p.add_argument("--masks", type=int, default=1000, help="rise: number of random masks (default: 1000)")
    p.add_argument("--cells", type=int, default=8, help="rise: masks of CELLS x CELLS cells (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="rise: the masks' seed, written in the figure (default: 0)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    return p


def main(argv=None):
    a = get_args_parser().parse_args(argv)
    from hw3io import pick_device
    from vitpet.explain import visualize_attention
    for path in visualize_attention(a.images, a.output_dir, checkpoint=a.checkpoint, model_name=a.model,
                                    layer=a.layer, heads=a.heads, use_rollout=a.rollout,
                                    device=pick_device(a.device), pretrained_file=a.pretrained_file,
                                    img_size=a.img_size, method=a.method, masks=a.masks, cells=a.cells,
                                    seed=a.seed, all_layers=a.all_layers, html=a.html):
        print(path)


if __name__ == "__main__":
    sys.exit(run_cli(main))

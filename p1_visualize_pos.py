"""Plot the cosine similarity of every ViT patch position embedding with every other (a grid of maps)."""
import argparse
import sys

from hw3io.errors import run_cli
from vitpet.config import add_explained_model_args


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__)
    add_explained_model_args(p)
    p.add_argument("--output", default="pos.png", help="PNG to write; the matrix goes beside it as .npy")
    return p


def main(argv=None):
    a = get_args_parser().parse_args(argv)
    from vitpet.explain import visualize_pos
    sim = visualize_pos(a.output, checkpoint=a.checkpoint, model_name=a.model, pretrained_file=a.pretrained_file,
                        img_size=a.img_size)
    print(f"wrote {a.output} and its {sim.shape[0]}x{sim.shape[1]} matrix")


if __name__ == "__main__":
    sys.exit(run_cli(main))

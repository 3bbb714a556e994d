"""Plot the cosine similarity of every ViT patch position embedding with every other (a grid of maps)."""
import argparse
import sys

from hw3io.errors import run_cli


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a .safetensors checkpoint written by p1_train.py")
    src.add_argument("--model", help="a timm model name, with its pretrained weights")
    p.add_argument("--output", default="pos.png", help="PNG to write; the matrix goes beside it as .npy")
    return p


def main(argv=None):
    a = get_args_parser().parse_args(argv)
    from vitpet.explain import visualize_pos
    sim = visualize_pos(a.output, checkpoint=a.checkpoint, model_name=a.model)
    print(f"wrote {a.output} and its {sim.shape[0]}x{sim.shape[1]} matrix")


if __name__ == "__main__":
    sys.exit(run_cli(main))

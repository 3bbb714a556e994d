"""Fine-tune a timm ViT on the pet folders (plain python3 or torchrun). See docs/training.md for the recipe."""
import argparse
import sys

from hw3io.errors import run_cli
from training.options import add_config_args, config_from_args
from vitpet.config import TrainConfig


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__)
    return add_config_args(parser, TrainConfig)


def main(argv=None):
    cfg = config_from_args(get_args_parser().parse_args(argv), TrainConfig)
    from vitpet.train import fit
    fit(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))

"""Train or fine-tune CATR on a COCO-format caption set (official recipe: --preset catr; CPU-sized: --preset tiny).

Writes OUTPUT_DIR/checkpoint.pth (read by hw3_2.sh as it is: CATR_CHECKPOINT=OUTPUT_DIR/checkpoint.pth
CATR_VOCAB=OUTPUT_DIR/vocab.txt), vocab.txt, log.csv, run.json and last.safetensors (--resume auto).
"""
import argparse
import sys

from hw3io.errors import run_cli
from training.options import add_config_args, config_from_args
from catr.config import CaptionTrainConfig


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_config_args(parser, CaptionTrainConfig)


def main(argv=None):
    cfg = config_from_args(get_args_parser().parse_args(argv), CaptionTrainConfig)
    from catr.train import fit
    fit(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))

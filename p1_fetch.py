"""The two Python halves of hw3_1.sh's model download (wget moves the bytes, as the course requires).

  need CKPT    print the URL to download when CKPT is missing or is not the recorded model; nothing when ready
  accept CKPT  check CKPT.part against the recorded sha256, then move it onto CKPT (or discard it)
"""
import argparse
import sys
from pathlib import Path

from hw3io.errors import run_cli
from vitpet.publish import URL_FILE

REPO = Path(__file__).resolve().parent


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("need", "accept"))
    p.add_argument("checkpoint", help="where the model is kept (checkpoints/p1_vit_b16.safetensors)")
    p.add_argument("--url-file", default=str(REPO / URL_FILE), help="the recorded 'URL SHA256'")
    p.add_argument("--url", default="", help="another URL for the same file ('URL' or 'URL SHA256')")
    return p


def main(argv=None):
    a = get_args_parser().parse_args(argv)
    from hw3io.errors import P1_MODULES, require_packages
    from vitpet.publish import accept_download, needs_download
    if a.action == "need":
        require_packages(P1_MODULES)  # before a 300 MB download, not after it; Problem 2's are not needed
        url = needs_download(a.checkpoint, a.url_file, a.url or None)
        if url:
            print(url)
    else:
        accept_download(a.checkpoint, a.url_file, a.url or None)


if __name__ == "__main__":
    sys.exit(run_cli(main))

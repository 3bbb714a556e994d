"""Record where the graded Problem 1 model can be downloaded: writes checkpoints/p1.url ('URL SHA256').

Upload the checkpoint anywhere that serves a direct link first; then run this, commit checkpoints/p1.url, and
hw3_1.sh downloads (and checks) that exact file on the graders' machines. Prints the final result the report must
mark for the graders.
"""
import argparse
import sys
from pathlib import Path

from hw3io.errors import run_cli
from vitpet.publish import URL_FILE

REPO = Path(__file__).resolve().parent


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="the checkpoint to publish, e.g. runs/p1/best.safetensors")
    p.add_argument("--url", required=True, help="direct download link of that same file")
    p.add_argument("--url-file", default=str(REPO / URL_FILE), help="where to record it")
    p.add_argument("--no-check", action="store_true", help="record the link without downloading it once to check "
                   "that it serves this exact file (by default it is checked: a sharing page is refused)")
    return p


def main(argv=None):
    a = get_args_parser().parse_args(argv)
    from vitpet.config import format_versions, reproduce_commands
    from vitpet.publish import publish
    r = publish(a.checkpoint, a.url, a.url_file, check=not a.no_check)
    cfg = r["config"]
    train_cmd, predict_cmd = reproduce_commands(cfg.get("train_config") or {})
    acc = cfg.get("val_acc")
    print(f"recorded {r['url_file']}: commit it (git add checkpoints/p1.url)\n")
    print("Final result (mark it in the report; graders reproduce it within 0.5%):")
    print(f"  val accuracy  {acc:.4f}" if acc is not None else "  val accuracy  unknown (not in the checkpoint)",
          f"(epoch {cfg.get('epoch')}, from the checkpoint's metadata)")
    print(f"  model         {cfg['model']}, {cfg['num_classes']} classes, {cfg['img_size']} px")
    print(f"  checkpoint    {a.checkpoint} ({r['size_mb']:.0f} MiB), sha256 {r['sha256']}")
    print(f"  versions      {format_versions(cfg.get('versions'))}")
    print(f"  train         {train_cmd}")
    print(f"  predict       {predict_cmd}")


if __name__ == "__main__":
    sys.exit(run_cli(main))

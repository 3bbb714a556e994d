#!/usr/bin/env bash
# Usage: bash hw3_1.sh <image_dir> <output_csv>
# Checkpoint: $P1_CHECKPOINT, default checkpoints/p1_vit_b16.safetensors beside this script. When that file is
# missing and $P1_CHECKPOINT_URL is set, it is downloaded first (the course's "script fetches its model" rule).
set -euo pipefail
if [ "$#" -ne 2 ]; then
  echo "usage: bash hw3_1.sh <image_dir> <output_csv>" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ckpt="${P1_CHECKPOINT:-$here/checkpoints/p1_vit_b16.safetensors}"
if [ ! -f "$ckpt" ] && [ -n "${P1_CHECKPOINT_URL:-}" ]; then
  mkdir -p "$(dirname "$ckpt")"
  echo "downloading checkpoint to $ckpt" >&2
  if ! wget -q -O "$ckpt.part" "$P1_CHECKPOINT_URL"; then
    rm -f "$ckpt.part"
    echo "error: could not download $P1_CHECKPOINT_URL" >&2
    exit 1
  fi
  mv "$ckpt.part" "$ckpt"
fi
python3 "$here/p1_inference.py" --checkpoint "$ckpt" --images "$1" --output "$2"

#!/usr/bin/env bash
# Usage: bash hw3_1.sh <image_dir> <output_csv>
# Writes filename,label for every image. The model is $P1_CHECKPOINT if set; otherwise
# checkpoints/p1_vit_b16.safetensors beside this script, downloaded with wget from the URL recorded in
# checkpoints/p1.url (or $P1_CHECKPOINT_URL) and used only once its sha256 matches the recorded one.
set -euo pipefail
if [ "$#" -ne 2 ]; then
  echo "usage: bash hw3_1.sh <image_dir> <output_csv>" >&2
  exit 2
fi
repo=$(dirname "${BASH_SOURCE[0]}")
py=python3
# the project's venv only when its install finished (make setup's stamp); otherwise the machine's python3
if [ -f "$repo/.venv/.installed" ] && [ -x "$repo/.venv/bin/python3" ]; then py=$repo/.venv/bin/python3; fi
ckpt=${P1_CHECKPOINT:-}
if [ -z "$ckpt" ]; then
  ckpt=$repo/checkpoints/p1_vit_b16.safetensors
  url=$("$py" "$repo/p1_fetch.py" need "$ckpt" --url "${P1_CHECKPOINT_URL:-}")
  if [ -n "$url" ]; then
    echo "downloading the model from $url" >&2
    if ! wget -nv -O "$ckpt.part" "$url"; then
      echo "error: could not download the model from $url" >&2
      exit 1
    fi
    "$py" "$repo/p1_fetch.py" accept "$ckpt" --url "${P1_CHECKPOINT_URL:-}"
  fi
fi
exec "$py" "$repo/p1_inference.py" --checkpoint "$ckpt" --images "$1" --output "$2"

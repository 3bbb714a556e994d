#!/usr/bin/env bash
# Usage: bash hw3_2.sh <image_dir> <output_dir>
# Writes <stem>.png (per-token cross-attention tiles), <stem>.npy and <stem>.txt per image. Weights:
# $CATR_CHECKPOINT if set, else the official CATR v3 release (or $CATR_CHECKPOINT_URL), downloaded once into the
# torch hub cache. Vocabulary: $CATR_VOCAB if set, else BERT uncased from the Hugging Face hub (cached).
# $CATR_HTML=1 also writes index.html, a page to browse the maps, and for attention every layer's maps (off by default).
set -euo pipefail
if [ "$#" -ne 2 ]; then
  echo "usage: bash hw3_2.sh <image_dir> <output_dir>" >&2
  exit 2
fi
repo=$(dirname "${BASH_SOURCE[0]}")
py=python3
# the project's venv only when its install finished (make setup's stamp); otherwise the machine's python3
if [ -f "$repo/.venv/.installed" ] && [ -x "$repo/.venv/bin/python3" ]; then py=$repo/.venv/bin/python3; fi
exec "$py" "$repo/p2_caption_attn.py" --images "$1" --output-dir "$2"

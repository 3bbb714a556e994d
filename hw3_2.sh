#!/usr/bin/env bash
# Usage: bash hw3_2.sh <image_dir> <output_dir>
# Weights: $CATR_CHECKPOINT (an official CATR .pth) if set, else the official v3 release (downloaded once into
# the torch hub cache). Vocabulary: $CATR_VOCAB if set, else bert-base-uncased from the Hugging Face cache.
set -euo pipefail
if [ "$#" -ne 2 ]; then
  echo "usage: bash hw3_2.sh <image_dir> <output_dir>" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python3 "$here/p2_caption_attn.py" --images "$1" --output-dir "$2"

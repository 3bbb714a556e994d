#!/usr/bin/env bash
# The whole pipeline offline on generated data (run by `make demo`, which puts .venv/bin first on PATH).
# Problem 1: generate pet-style folders -> train a tiny ViT from scratch on the CPU -> hw3_1.sh -> plots.
# Problem 2: generate the caption world -> pretrain the tiny CATR's ConvNet on the training scenes' boxes -> train
# the tiny CATR on the CPU -> hw3_2.sh on held-out scenes -> caption accuracy and the pointing game.
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo_out
rm -rf "$out"
export HF_HUB_OFFLINE=1

echo "== Problem 1: data"
python3 -m synth.pets "$out/data" --train-per-class 80 --val-per-class 8
echo "== Problem 1: train (tiny ViT from scratch, CPU, about 2 minutes)"
python3 p1_train.py --data-dir "$out/data" --output-dir "$out/p1" --model vit_demo_patch8 --no-pretrained \
  --epochs 6 --batch-size 32 --opt adamw --lr 2e-3 --weight-decay 0.05 --drop-path 0 --label-smoothing 0 \
  --workers 2
echo "== Problem 1: predict val with hw3_1.sh"
P1_CHECKPOINT="$out/p1/best.safetensors" bash hw3_1.sh "$out/data/val" "$out/p1/pred.csv"
echo "== Problem 1: explain"
python3 p1_visualize_pos.py --checkpoint "$out/p1/best.safetensors" --output "$out/p1/pos.png"
imgs=$(ls "$out"/data/val/*.jpg | awk 'NR % 100 == 1' | head -n 3)
python3 p1_visualize_attn.py --checkpoint "$out/p1/best.safetensors" --images $imgs --output-dir "$out/p1/attn" \
  --all-layers --html
echo "== Problem 1: maps of the decision itself beside the attention (relevance, attribution; RISE, 500 masks)"
python3 p1_visualize_attn.py --checkpoint "$out/p1/best.safetensors" --images $imgs --method relevance \
  --output-dir "$out/p1/relevance"
python3 p1_visualize_attn.py --checkpoint "$out/p1/best.safetensors" --images $imgs --method attribution \
  --output-dir "$out/p1/attribution"
python3 p1_visualize_attn.py --checkpoint "$out/p1/best.safetensors" --images $imgs --method rise --masks 500 \
  --output-dir "$out/p1/rise"
echo "== Problem 1: pointing game on val (does each map peak on the object?)"
python3 -m vitpet.pointing --checkpoint "$out/p1/best.safetensors" --images "$out/data/val"
echo "== Problem 1: can the maps be trusted? pointing, deletion/insertion, randomisation on 37 val images"
python3 -m vitpet.pointing --checkpoint "$out/p1/best.safetensors" --images "$out/data/val" --faithfulness \
  --limit 37 --masks 500 --json "$out/p1/trust.json"

echo "== Problem 2: caption world (scenes of coloured shapes, COCO captions, object boxes)"
python3 -m synth.captionworld "$out/world" --train 2000 --val 50
echo "== Problem 2: pretrain the tiny CATR's ConvNet to name boxed objects (its ImageNet; CPU, about 30 s)"
python3 -m catr.pretrain --images "$out/world/train/images" --objects "$out/world/train/objects.json" \
  --output "$out/p2/convnet.safetensors"
echo "== Problem 2: train the tiny CATR from it (CPU, about 3 minutes; 6 epochs, not the preset's 8, to keep the demo short)"
python3 p2_train.py --preset tiny --backbone-weights "$out/p2/convnet.safetensors" --epochs 6 \
  --train-annotations "$out/world/train/captions.json" --train-images "$out/world/train/images" \
  --val-annotations "$out/world/val/captions.json" --val-images "$out/world/val/images" --vocab "$out/world/vocab.txt" --output-dir "$out/p2"
echo "== Problem 2: hw3_2.sh on the held-out scenes"
CATR_CHECKPOINT="$out/p2/checkpoint.pth" CATR_VOCAB="$out/p2/vocab.txt" CATR_HTML=1 bash hw3_2.sh "$out/world/val/images" \
  "$out/p2/attn"
echo "== Problem 2: captions and pointing game (does a word's cross-attention peak on the object it names?)"
python3 -m catr.pointing "$out/p2/attn" --objects "$out/world/val/objects.json" --mark \
  --captions "$out/world/val/captions.json" --checkpoint "$out/p2/checkpoint.pth" --vocab "$out/p2/vocab.txt"
echo "== Problem 2: can the maps be trusted? pointing, deletion/insertion, randomisation on 12 held-out scenes"
python3 -m catr.pointing "$out/p2/attn" --objects "$out/world/val/objects.json" --checkpoint "$out/p2/checkpoint.pth" \
  --vocab "$out/p2/vocab.txt" --faithfulness --limit 12 --masks 500 --json "$out/p2/trust.json"
echo "== Problem 2: relevance maps of the same captions (p2_caption_attn.py --explain relevance)"
python3 p2_caption_attn.py --images "$out/world/val/images" --output-dir "$out/p2/relevance" --explain relevance \
  --checkpoint "$out/p2/checkpoint.pth" --vocab "$out/p2/vocab.txt"

echo
echo "Done in $((SECONDS / 60)) min $((SECONDS % 60)) s (chance accuracy is 1/37 = 0.027). Outputs:"
echo "  $out/p1/log.csv, curves.png, confusion.png   training log and plots"
echo "  $out/p1/pred.csv                             hw3_1.sh predictions"
echo "  $out/p1/pos.png, attn/*.png                 position-embedding similarity, CLS attention"
echo "  $out/p1/attn/index.html                      explorer: every layer and head over each image (open in a browser)"
echo "  $out/p1/{relevance,attribution,rise}/*.png   maps of the decision (relevance, attribution, RISE)"
echo "  $out/p1/trust.json                           pointing and faithfulness of every map (for the report)"
echo "  $out/p2/convnet.safetensors                  the pretrained ConvNet"
echo "  $out/p2/log.csv, checkpoint.pth              tiny CATR training log and weights"
echo "  $out/p2/attn/*.png                           per-token cross-attention tiles of held-out scenes"
echo "  $out/p2/attn/index.html                      explorer: every token, layer and head, with the pointing game's hits"
echo "  $out/p2/relevance/*.png                      per-token relevance tiles of the same captions"
echo "  $out/p2/trust.json                           pointing and faithfulness of every map (for the report)"

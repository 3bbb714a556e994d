"""Problem 1: fine-tune a timm ViT on the 37-class pet folder, predict, and explain it."""

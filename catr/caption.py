"""The caption model (backbone -> 1x1 projection -> transformer -> 3-layer MLP over the vocabulary), its
builder, and the loader for the official checkpoints."""
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hw3io import UserError
from .backbone import build_backbone
from .config import CATRConfig
from .transformer import build_transformer

# The official release assets (saahiluppal/catr hubconf.py); all three share one architecture.
CHECKPOINT_URLS = {
    "v1": "https://github.com/saahiluppal/catr/releases/download/0.1/weights_9348032.pth",
    "v2": "https://github.com/saahiluppal/catr/releases/download/0.2/weight389123791.pth",
    "v3": "https://github.com/saahiluppal/catr/releases/download/0.2/weight493084032.pth",
}


class MLP(nn.Module):
    """Linear layers with ReLU between them."""

    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class Caption(nn.Module):
    def __init__(self, backbone, transformer, hidden_dim, vocab_size):
        super().__init__()
        self.backbone = backbone
        self.input_proj = nn.Conv2d(backbone.num_channels, hidden_dim, kernel_size=1)
        self.transformer = transformer
        self.mlp = MLP(hidden_dim, 512, vocab_size, 3)

    def encode_image(self, images, mask):
        """images (B, 3, H, W), mask (B, H, W) -> memory (HW', B, C), flat mask, flat pos, grid (H', W')."""
        features, fmask, pos = self.backbone(images, mask)
        memory, fmask, pos = self.transformer.encode(self.input_proj(features), fmask, pos)
        return memory, fmask, pos, tuple(features.shape[-2:])

    def decode(self, ids, ids_padding_mask, memory, mask, pos, attn_layer=None, attn_mode="mean", last_only=False):
        """Logits (B, T, vocab) for every position (``last_only``: (B, 1, vocab), all greedy decoding needs; the
        vocabulary head is the decoder's most expensive part), plus the requested cross-attention."""
        hs, attn = self.transformer.decode(ids, ids_padding_mask, memory, mask, pos, attn_layer, attn_mode)
        return self.mlp(hs[:, -1:] if last_only else hs), attn

    def forward(self, images, mask, ids, ids_padding_mask):
        """The official call: everything recomputed from pixels. Returns logits (B, T, vocab)."""
        memory, fmask, pos, _ = self.encode_image(images, mask)
        return self.decode(ids, ids_padding_mask, memory, fmask, pos)[0]


def build_model(config: CATRConfig) -> Caption:
    return Caption(build_backbone(config), build_transformer(config), config.hidden_dim, config.vocab_size)


def load_official_checkpoint(path) -> dict:
    """An official checkpoint file as a dict (``model`` holds the state dict), loaded without unpickling
    arbitrary objects."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"CATR checkpoint not found: {path}") from None
    except Exception as e:
        raise UserError(f"cannot read CATR checkpoint {path}: {type(e).__name__}: {str(e).splitlines()[0][:160]}") \
            from None
    if not isinstance(ckpt, dict):
        raise UserError(f"not a CATR checkpoint: {path}")
    return ckpt if "model" in ckpt else {"model": ckpt}


def fetch_official_checkpoint(version: str) -> dict:
    """Download (or reuse from the torch hub cache) the official release asset of ``version``."""
    if version not in CHECKPOINT_URLS:
        raise UserError(f"unknown CATR version {version!r}; choose from {', '.join(CHECKPOINT_URLS)}")
    url = CHECKPOINT_URLS[version]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(cached), progress=True)  # writes a temp file, then renames
        except Exception as e:
            raise UserError(f"could not download CATR {version} weights ({type(e).__name__}); offline, download "
                            f"{url} elsewhere and pass --checkpoint FILE (or set CATR_CHECKPOINT), or place it in "
                            f"{cached.parent}") from None
    return load_official_checkpoint(cached)


def create_model(version: str = "v3", checkpoint=None, config: CATRConfig | None = None) -> Caption:
    """The model with weights from ``checkpoint`` ($CATR_CHECKPOINT) or official release ``version``.

    The architecture is the official one unless ``config`` is given or the file carries a ``catr_config`` dict
    (our own small checkpoints do; the official ones don't need to)."""
    checkpoint = checkpoint or os.environ.get("CATR_CHECKPOINT") or None
    ckpt = load_official_checkpoint(checkpoint) if checkpoint else fetch_official_checkpoint(version)
    if config is None:
        config = CATRConfig(**ckpt["catr_config"]) if isinstance(ckpt.get("catr_config"), dict) else CATRConfig()
    model = build_model(config)
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as e:
        raise UserError(f"checkpoint does not match the CATR architecture: {str(e).splitlines()[0][:200]}") from None
    return model.eval()

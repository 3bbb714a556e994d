"""The caption model (backbone -> 1x1 projection -> transformer -> 3-layer MLP over the vocabulary), its
builder, and ``create_model`` (builder + weights from ``hub``)."""
import torch.nn.functional as F
from torch import nn

from hw3io import UserError
from .backbone import build_backbone
from .config import CATRConfig
from .hub import load_weights
from .transformer import build_transformer


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

    def encode_image(self, images, mask, record=None):
        """images (B, 3, H, W), mask (B, H, W) -> memory (HW', B, C), flat mask, flat pos, grid (H', W').
        ``record``: a ``transformer.AttentionRecord`` that keeps the encoder's attention probabilities."""
        features, fmask, pos = self.backbone(images, mask)
        memory, fmask, pos = self.transformer.encode(self.input_proj(features), fmask, pos, record)
        return memory, fmask, pos, tuple(features.shape[-2:])

    def decode(self, ids, ids_padding_mask, memory, mask, pos, attn_layer=None, attn_mode="mean", last_only=False,
               record=None):
        """Logits (B, T, vocab) for every position (``last_only``: (B, 1, vocab), all greedy decoding needs; the
        vocabulary head is the decoder's most expensive part), plus the requested cross-attention. ``record``: a
        ``transformer.AttentionRecord`` that keeps the decoder's attention probabilities."""
        hs, attn = self.transformer.decode(ids, ids_padding_mask, memory, mask, pos, attn_layer, attn_mode, record)
        return self.mlp(hs[:, -1:] if last_only else hs), attn

    def step(self, ids, cache):
        """Cached decoding: the tokens ids (B,) at position ``cache.length`` -> next-token logits (B, vocab)."""
        return self.mlp(self.transformer.step(ids, cache))

    def forward(self, images, mask, ids, ids_padding_mask):
        """The official call: everything recomputed from pixels. Returns logits (B, T, vocab)."""
        memory, fmask, pos, _ = self.encode_image(images, mask)
        return self.decode(ids, ids_padding_mask, memory, fmask, pos)[0]


def build_model(config: CATRConfig) -> Caption:
    model = Caption(build_backbone(config), build_transformer(config), config.hidden_dim, config.vocab_size)
    model.config = config  # preprocessing (max_dim) and checkpoints read it
    return model


def checkpoint_config(ckpt: dict) -> CATRConfig:
    """The architecture a checkpoint was trained with: its ``catr_config`` (ours), else the official one."""
    saved = ckpt.get("catr_config")
    if not isinstance(saved, dict):
        return CATRConfig()
    unknown = sorted(set(saved) - set(CATRConfig.__dataclass_fields__))
    if unknown:
        raise UserError(f"the checkpoint's catr_config has fields this code does not know ({', '.join(unknown)}); "
                        "it was written by a newer version of this repository")
    return CATRConfig(**saved)


def create_model(version: str = "v3", checkpoint=None, config: CATRConfig | None = None, url: str | None = None
                 ) -> Caption:
    """The model with weights from ``checkpoint`` (a file), else from ``url`` or official release ``version``.

    The architecture is the official one unless ``config`` is given or the file carries a ``catr_config`` dict
    (our own checkpoints do; the official ones don't need to)."""
    ckpt = load_weights(checkpoint, version, url)
    model = build_model(config or checkpoint_config(ckpt))
    load_strictly(model, ckpt["model"], "checkpoint")
    return model.eval()


def load_strictly(model: Caption, state: dict, what: str) -> None:
    """``load_state_dict(strict=True)``, with a mismatch said in one line: how many tensors are missing, foreign
    or of another shape, with an example of each (torch's message puts them on lines after a colon)."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise UserError(f"{what} does not match the CATR architecture: {mismatch(model.state_dict(), state)}") \
            from None


def mismatch(own: dict, state: dict) -> str:
    missing = [k for k in own if k not in state]
    foreign = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and getattr(state[k], "shape", None) != own[k].shape]
    parts = [f"{len(missing)} of its {len(own)} tensors missing (e.g. {missing[0]})" if missing else "",
             f"{len(foreign)} not CATR's (e.g. {foreign[0]})" if foreign else "",
             f"{len(shapes)} of another shape (e.g. {shapes[0]}: {tuple(state[shapes[0]].shape)} in the file, "
             f"{tuple(own[shapes[0]].shape)} here)" if shapes else ""]
    text = "; ".join(p for p in parts if p) or "its tensors differ"
    if any(k in state for k in ("cls_token", "pos_embed", "blocks.0.attn.qkv.weight")):
        text += " - this looks like a timm ViT (Problem 1's checkpoint: use it with hw3_1.sh)"
    return text

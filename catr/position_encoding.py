"""Sine position encoding over the feature map (DETR's, normalised), computed from the padding mask."""
import math

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """Half the channels encode y, half x; positions are cumulative counts of valid pixels, scaled to 2*pi."""

    def __init__(self, num_pos_feats: int = 128, temperature: int = 10000, normalize: bool = True,
                 scale: float = 2 * math.pi):
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = scale

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """mask (B, H, W), True on padding -> pos (B, 2 * num_pos_feats, H, W)."""
        not_mask = ~mask
        y = not_mask.cumsum(1, dtype=torch.float32)
        x = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y = y / (y[:, -1:, :] + eps) * self.scale
            x = x / (x[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)
        pos_x = x[..., None] / dim_t
        pos_y = y[..., None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def build_position_encoding(config) -> nn.Module:
    if config.position_embedding not in ("sine", "v2"):
        raise ValueError(f"only the sine position encoding of the released checkpoints is supported, "
                         f"not {config.position_embedding!r}")
    return PositionEmbeddingSine(config.hidden_dim // 2, normalize=True)

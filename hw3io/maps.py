"""Attention maps on a patch/feature grid -> pixels."""
import torch
import torch.nn.functional as F


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., gh, gw) -> (..., H, W), bilinear with align_corners=False, so grid cell (r, c) peaks inside the pixel
    box it covers, whatever H/gh and W/gw are (e.g. CATR's ceil(H/16) grids)."""
    lead = maps.shape[:-2]
    x = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False).reshape(*lead, *size)

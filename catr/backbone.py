"""ResNet backbone with frozen batch norm, returning the last feature map and its padding mask.

Parameter names follow DETR/CATR (``backbone.0.body.layer1...``) so official checkpoints load strictly.
"""
from collections import OrderedDict

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from .position_encoding import build_position_encoding


class Backbone(nn.Module):
    """A torchvision ResNet up to layer4 (no pooling, no fc). Never downloads ImageNet weights: the caption
    checkpoint carries its own backbone weights."""

    def __init__(self, name: str = "resnet101", dilation: bool = True):
        super().__init__()
        resnet = getattr(torchvision.models, name)(weights=None, replace_stride_with_dilation=[False, False, dilation],
                                                   norm_layer=FrozenBatchNorm2d)
        self.body = nn.Sequential(OrderedDict(list(resnet.named_children())[:-2]))  # drop avgpool, fc
        self.num_channels = resnet.fc.in_features

    def forward(self, images: torch.Tensor, mask: torch.Tensor):
        """images (B, 3, H, W), mask (B, H, W) True on padding -> features (B, C, H', W'), mask (B, H', W')."""
        x = self.body(images)
        mask = F.interpolate(mask[None].float(), size=x.shape[-2:]).to(torch.bool)[0]
        return x, mask


class Joiner(nn.Sequential):
    """backbone + position encoding, returned together (DETR's Joiner); index 0 keeps the official key prefix."""

    def __init__(self, backbone: Backbone, position_embedding: nn.Module):
        super().__init__(backbone, position_embedding)
        self.num_channels = backbone.num_channels

    def forward(self, images, mask):
        x, mask = self[0](images, mask)
        return x, mask, self[1](mask).to(x.dtype)


def build_backbone(config) -> Joiner:
    return Joiner(Backbone(config.backbone, config.dilation), build_position_encoding(config))

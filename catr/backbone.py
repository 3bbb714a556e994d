"""ResNet backbone with frozen batch norm, returning the last feature map and its padding mask.

Parameter names follow DETR/CATR (``backbone.0.body.layer1...``) so official checkpoints load strictly.
"""
from collections import OrderedDict

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from hw3io import UserError, brief
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


def load_imagenet_weights(backbone: Backbone, name: str) -> None:
    """Official CATR trains from torchvision's ImageNet ResNet (``pretrained=True``: IMAGENET1K_V1), fetched the
    standard way into the torch hub cache (``$TORCH_HOME``); offline, a file already there is used."""
    weights = torchvision.models.get_model_weights(name)["IMAGENET1K_V1"]
    try:
        state = weights.get_state_dict(progress=True, weights_only=True)
    except Exception as e:
        reason = brief(e, 120)
        raise UserError(f"could not get the ImageNet weights of {name} ({reason}); offline, place "
                        f"{weights.url.rsplit('/', 1)[1]} in {torch.hub.get_dir()}/checkpoints, or start from CATR "
                        "weights with --init") from None
    backbone.body.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=True)


class ConvNet(nn.Module):
    """A small CNN for CPU-sized caption models (the ``tiny`` preset; ``catr.pretrain`` trains it first): stages
    of two 3x3 convs with trainable batch norm, each halving the resolution except the last, which is dilated
    instead (as CATR's ResNet): the feature map is ceil(H / 2**(n-1)) x ceil(W / 2**(n-1)) and its receptive
    field still spans a whole object."""

    def __init__(self, widths=(16, 32, 64, 64), dilate_last=True):
        super().__init__()
        layers, c_in = OrderedDict(), 3
        for i, c in enumerate(widths):
            last = dilate_last and i == len(widths) - 1
            stride, dil = (1, 2) if last else (2, 1)
            layers[f"stage{i}"] = nn.Sequential(
                nn.Conv2d(c_in, c, 3, stride=stride, padding=dil, dilation=dil, bias=False), nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.Conv2d(c, c, 3, padding=dil, dilation=dil, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
            c_in = c
        self.body = nn.Sequential(layers)
        self.num_channels = c_in
        self.stride = 2 ** (len(widths) - dilate_last)  # pixels per feature cell

    forward = Backbone.forward


class Joiner(nn.Sequential):
    """backbone + position encoding, returned together (DETR's Joiner); index 0 keeps the official key prefix."""

    def __init__(self, backbone: Backbone, position_embedding: nn.Module):
        super().__init__(backbone, position_embedding)
        self.num_channels = backbone.num_channels

    def forward(self, images, mask):
        x, mask = self[0](images, mask)
        return x, mask, self[1](mask).to(x.dtype)


def build_backbone(config) -> Joiner:
    body = ConvNet() if config.backbone == "convnet" else Backbone(config.backbone, config.dilation)
    return Joiner(body, build_position_encoding(config))

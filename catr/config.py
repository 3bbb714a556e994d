"""CATR's architecture numbers; the defaults are those of all three official checkpoints (v1, v2, v3)."""
from dataclasses import asdict, dataclass


@dataclass
class CATRConfig:
    backbone: str = "resnet101"        # torchvision ResNet name
    dilation: bool = True              # last stage dilated: stride 16, feature map ceil(H/16) x ceil(W/16)
    position_embedding: str = "sine"
    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 6
    dec_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    vocab_size: int = 30522            # BERT uncased
    max_position_embeddings: int = 128  # longest caption, [CLS] included
    layer_norm_eps: float = 1e-12       # BERT's value, used by the word-embedding LayerNorm
    pad_token_id: int = 0               # BERT [PAD]

    def to_dict(self):
        return asdict(self)

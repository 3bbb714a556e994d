"""A small CATR of the same architecture family and a generated vocabulary, for offline tests."""
from catr import CATRConfig, build_model

WORDS = ["a", "man", "woman", "riding", "bike", "sheep", "on", "the", "street", "grass", "with", "an", "umbrella",
         "girl", "ski", "##s", "##ing", ".", ","]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_vocab(path):
    path.write_text("\n".join(SPECIAL + WORDS) + "\n")
    return path


def small_config(**kw):
    cfg = dict(backbone="resnet50", dilation=True, hidden_dim=32, nheads=4, enc_layers=2, dec_layers=2,
               dim_feedforward=64, vocab_size=len(SPECIAL) + len(WORDS), max_position_embeddings=24, dropout=0.1)
    cfg.update(kw)
    return CATRConfig(**cfg)


def small_model(seed=0, **kw):
    import torch
    torch.manual_seed(seed)
    model = build_model(small_config(**kw)).eval()
    # Random backbones produce near-constant features; spread the MLP's output so greedy decoding varies.
    with torch.no_grad():
        model.mlp.layers[-1].weight.mul_(20)
    return model

"""BERT-format vocabulary files (``vocab.txt``: one token a line, the line number is its id)."""
from pathlib import Path

# BERT's special tokens, in the order a generated vocabulary lists them first: [PAD] is id 0.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def write_vocab(path, words) -> Path:
    """The special tokens, then ``words``; returns ``path``."""
    path = Path(path)
    path.write_text("\n".join((*SPECIAL_TOKENS, *words)) + "\n", encoding="utf-8")
    return path

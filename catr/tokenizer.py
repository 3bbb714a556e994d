"""BERT uncased vocabulary through ``tokenizers``: [CLS] starts a caption, [SEP] ends it, [PAD] pads."""
from pathlib import Path

from tokenizers import BertWordPieceTokenizer

from hw3io import UserError
from .hub import find_vocab


class CaptionTokenizer:
    def __init__(self, vocab_file):
        words = set(Path(vocab_file).read_text(encoding="utf-8", errors="replace").split("\n"))
        missing = [t for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]") if t not in words]
        if missing:
            raise UserError(f"vocabulary {vocab_file} lacks {', '.join(missing)}")
        self.vocab_file = Path(vocab_file)
        self.tok = BertWordPieceTokenizer(str(vocab_file), lowercase=True)
        ids = {t: self.tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")}
        self.start_id, self.end_id, self.pad_id = ids["[CLS]"], ids["[SEP]"], ids["[PAD]"]
        self.vocab_size = self.tok.get_vocab_size()

    def token(self, i: int) -> str:
        """The word piece as generated (``##s`` keeps its prefix)."""
        return self.tok.id_to_token(i)

    def decode(self, ids) -> str:
        """Text as CATR prints it before capitalising: special tokens skipped, word pieces joined."""
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids


def load_tokenizer(vocab=None) -> CaptionTokenizer:
    """From a ``vocab.txt``, else BERT uncased's through the Hugging Face hub."""
    return CaptionTokenizer(find_vocab(vocab))

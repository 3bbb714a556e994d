"""BERT uncased vocabulary through ``tokenizers``: [CLS] starts a caption, [SEP] ends it, [PAD] pads."""
import os
from pathlib import Path

from tokenizers import BertWordPieceTokenizer

from hw3io import UserError

HF_REPOS = ("google-bert/bert-base-uncased", "bert-base-uncased")


def find_vocab(vocab=None) -> Path:
    """``vocab`` argument, then $CATR_VOCAB, then the Hugging Face cache of bert-base-uncased."""
    vocab = vocab or os.environ.get("CATR_VOCAB")
    if vocab:
        if not Path(vocab).is_file():
            raise UserError(f"vocabulary file not found: {vocab}")
        return Path(vocab)
    try:
        from huggingface_hub import try_to_load_from_cache
        for repo in HF_REPOS:
            hit = try_to_load_from_cache(repo, "vocab.txt")
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit)
    except ImportError:
        pass
    raise UserError("no BERT uncased vocabulary: pass --vocab vocab.txt (or set CATR_VOCAB), or put bert-base-uncased "
                    "in the Hugging Face cache (huggingface-cli download bert-base-uncased vocab.txt)")


class CaptionTokenizer:
    def __init__(self, vocab_file):
        words = set(Path(vocab_file).read_text(encoding="utf-8", errors="replace").split("\n"))
        missing = [t for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]") if t not in words]
        if missing:
            raise UserError(f"vocabulary {vocab_file} lacks {', '.join(missing)}")
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
    return CaptionTokenizer(find_vocab(vocab))

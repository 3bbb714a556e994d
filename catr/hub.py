"""Where CATR's weights and vocabulary come from (DETR keeps this beside the model, in ``hubconf.py``).

Weights: a local file, or an official release asset downloaded once into the torch hub cache. Vocabulary: a local
``vocab.txt``, or BERT uncased's through ``huggingface_hub`` (its cache, ``HF_HOME``, ``HF_ENDPOINT`` and
``HF_HUB_OFFLINE`` all honoured). Nothing here reads the environment: the scripts pass what they were given.
"""
import os
from pathlib import Path

import torch

from hw3io import UserError

# The official release assets (saahiluppal/catr hubconf.py); all three share one architecture.
CHECKPOINT_URLS = {
    "v1": "https://github.com/saahiluppal/catr/releases/download/0.1/weights_9348032.pth",
    "v2": "https://github.com/saahiluppal/catr/releases/download/0.2/weight389123791.pth",
    "v3": "https://github.com/saahiluppal/catr/releases/download/0.2/weight493084032.pth",
}
BERT_REPO = "google-bert/bert-base-uncased"  # the canonical id; "bert-base-uncased" is its old alias
BERT_REPO_ALIASES = ("bert-base-uncased",)


def load_checkpoint_file(path) -> dict:
    """A CATR checkpoint file as a dict (``model`` holds the state dict), loaded without unpickling arbitrary
    objects."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"CATR checkpoint not found: {path}") from None
    except Exception as e:
        raise UserError(f"cannot read CATR checkpoint {path}: {type(e).__name__}: {str(e).splitlines()[0][:160]}") \
            from None
    if not isinstance(ckpt, dict):
        raise UserError(f"not a CATR checkpoint: {path}")
    return ckpt if "model" in ckpt else {"model": ckpt}


def release_url(version: str) -> str:
    if version not in CHECKPOINT_URLS:
        raise UserError(f"unknown CATR version {version!r}; choose from {', '.join(CHECKPOINT_URLS)}")
    return CHECKPOINT_URLS[version]


def fetch_checkpoint(url: str) -> dict:
    """Download ``url`` once into the torch hub cache (``$TORCH_HOME``) and load it. The download goes to a temp
    file that is renamed only when complete, so an interrupted one is never used."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if not cached.is_file():
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cached), progress=True)
        except Exception as e:
            raise UserError(f"could not download CATR weights from {url} ({type(e).__name__}); offline, download it "
                            f"elsewhere and pass --checkpoint FILE (or set CATR_CHECKPOINT), or place it in "
                            f"{cached.parent}") from None
    return load_checkpoint_file(cached)


def load_weights(checkpoint=None, version: str = "v3", url: str | None = None) -> dict:
    """The checkpoint dict from a local file, else from ``url`` (default: the release of ``version``)."""
    if checkpoint:
        return load_checkpoint_file(checkpoint)
    return fetch_checkpoint(url or release_url(version))


def find_vocab(vocab=None) -> Path:
    """``vocab`` if given, else BERT uncased's ``vocab.txt`` from the Hugging Face hub (cached after the first
    download)."""
    if vocab:
        if not Path(vocab).is_file():
            raise UserError(f"vocabulary file not found: {vocab}")
        return Path(vocab)
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    try:
        return Path(hf_hub_download(BERT_REPO, "vocab.txt"))
    except Exception as e:  # offline with an empty cache, hub unreachable, bad endpoint
        for repo in BERT_REPO_ALIASES:  # an older cache may hold it under the alias
            hit = try_to_load_from_cache(repo, "vocab.txt")
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit)
        reason = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}" if str(e) else type(e).__name__
        raise UserError(f"no BERT uncased vocabulary: could not get {BERT_REPO}/vocab.txt from the Hugging Face hub "
                        f"({reason}); pass --vocab vocab.txt (or set CATR_VOCAB)") from None

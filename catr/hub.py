"""Where CATR's weights and vocabulary come from (DETR keeps this beside the model, in ``hubconf.py``).

Weights: a local file, or an official release asset downloaded once into the torch hub cache. Vocabulary: a local
``vocab.txt``, or BERT uncased's through ``huggingface_hub`` (its cache, ``HF_HOME``, ``HF_ENDPOINT`` and
``HF_HUB_OFFLINE`` all honoured). Nothing here reads the environment: the scripts pass what they were given.
"""
import hashlib
import os
from pathlib import Path

import torch

from hw3io import UserError, brief

# The official release assets (saahiluppal/catr hubconf.py); all three share one architecture.
CHECKPOINT_URLS = {
    "v1": "https://github.com/saahiluppal/catr/releases/download/0.1/weights_9348032.pth",
    "v2": "https://github.com/saahiluppal/catr/releases/download/0.2/weight389123791.pth",
    "v3": "https://github.com/saahiluppal/catr/releases/download/0.2/weight493084032.pth",
}
# sha256 of each release asset, checked when it is downloaded. Not recorded yet: the project's machines cannot reach
# GitHub. Whoever downloads one can fill its digest in (``sha256sum weight493084032.pth``); until then None skips
# the check for that release.
RELEASE_SHA256 = {url: None for url in CHECKPOINT_URLS.values()}
BERT_REPO = "google-bert/bert-base-uncased"  # the canonical id; "bert-base-uncased" is its old alias
BERT_REPO_ALIASES = ("bert-base-uncased",)


def load_checkpoint_file(path) -> dict:
    """A CATR checkpoint file as a dict (``model`` holds the state dict), loaded without unpickling arbitrary
    objects."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"CATR checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"CATR checkpoint {path} is a folder; give the .pth file") from None
    except Exception as e:
        raise UserError(f"cannot read CATR checkpoint {path}: {unreadable_reason(path, e)}") from None
    if not isinstance(ckpt, dict):
        raise UserError(f"not a CATR checkpoint: {path} holds a {type(ckpt).__name__}, not a dict of tensors")
    return ckpt if "model" in ckpt else {"model": ckpt}


def unreadable_reason(path, e: Exception) -> str:
    """Why ``torch.load`` refused a file, in words a user can act on. torch's own text for a weights-only refusal
    advises ``weights_only=False``, i.e. unpickling an untrusted file: never repeated here."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head[8:9] == b"{" or path_suffix(path) == ".safetensors":  # 8 bytes of header length, then JSON
        return ("a .safetensors file (Problem 1's checkpoints are; hw3_2.sh needs a CATR .pth: official CATR's "
                "or p2_train.py's checkpoint.pth)")
    if "Weights only load failed" in str(e):
        return ("it holds Python objects beyond tensors and plain values, which this code never unpickles (that "
                "could run code); save the weights as a dict of tensors (torch.save({'model': state_dict}))")
    if head.startswith(b"PK"):
        return f"a zip archive torch cannot read ({brief(e, 120)})"
    return f"not a PyTorch checkpoint (it starts with {head!r}; a .pth starts with b'PK')"


def path_suffix(path) -> str:
    return Path(str(path)).suffix.lower()


def release_url(version: str) -> str:
    if version not in CHECKPOINT_URLS:
        raise UserError(f"unknown CATR version {version!r}; choose from {', '.join(CHECKPOINT_URLS)}")
    return CHECKPOINT_URLS[version]


def cache_path(url: str) -> Path:
    """Where ``url`` is cached in the torch hub cache (``$TORCH_HOME``): a release under its own file name (where
    ``torch.hub.load_state_dict_from_url`` puts it too), any other URL under its file name prefixed by a digest of
    the whole URL, so two links ending in ``checkpoint.pth`` never share a file."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    name = os.path.basename(url.split("?")[0]) or "checkpoint.pth"
    if url in CHECKPOINT_URLS.values():
        return folder / name
    return folder / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"


def fetch_checkpoint(url: str) -> dict:
    """Download ``url`` once into the torch hub cache and load it. The download goes to a temp file that is
    renamed only when complete (and, for a release with a recorded digest, only when its sha256 matches), so an
    interrupted or altered one is never used."""
    cached = cache_path(url)
    if not cached.is_file():
        expected = RELEASE_SHA256.get(url)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cached), hash_prefix=expected, progress=True)
        except RuntimeError as e:
            if expected and "invalid hash value" in str(e):
                raise UserError(f"the file at {url} is not the CATR release: its sha256 differs from the recorded "
                                f"{expected[:16]}...; nothing was cached") from None
            raise UserError(download_failed(url, cached, e)) from None
        except Exception as e:
            raise UserError(download_failed(url, cached, e)) from None
    return load_checkpoint_file(cached)


def download_failed(url: str, cached: Path, e: Exception) -> str:
    return (f"could not download CATR weights from {url} ({type(e).__name__}); offline, download it elsewhere and "
            f"pass --checkpoint FILE (or set CATR_CHECKPOINT), or place it at {cached}")


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
        reason = brief(e)
        raise UserError(f"no BERT uncased vocabulary: could not get {BERT_REPO}/vocab.txt from the Hugging Face hub "
                        f"({reason}); pass --vocab vocab.txt (or set CATR_VOCAB)") from None

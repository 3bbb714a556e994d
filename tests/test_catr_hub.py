"""catr/hub.py through hw3_2.sh on a fresh machine: the vocabulary from a Hugging Face hub endpoint and the weights
from a release URL, both served on loopback, cached after the first run; clear errors when they cannot be had."""
import subprocess

import numpy as np
import pytest
import torch

from catr_tiny import tiny_config, tiny_model, write_images, write_vocab
from helpers import ROOT, assert_one_line_error, grader_env
from catr.hub import RELEASE_SHA256, cache_path, fetch_checkpoint
from hw3io import UserError
from scripts.loopback import LoopbackServer, hub_path

VOCAB = hub_path("google-bert/bert-base-uncased", "vocab.txt")
WEIGHTS = "/saahiluppal/catr/releases/download/0.2/weight493084032.pth"


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    images = root / "images"
    write_images(images)
    for p in images.iterdir():  # one image keeps the runs short
        if p.name != "ski.jpg":
            p.unlink()
    ckpt = root / "w.pth"
    torch.save({"model": tiny_model().state_dict(), "catr_config": tiny_config().to_dict()}, ckpt)
    return {"images": images, "ckpt": ckpt, "vocab": write_vocab(root / "vocab.txt")}


def hw3_2(images, out, home, **env):
    return subprocess.run(["bash", str(ROOT / "hw3_2.sh"), str(images), str(out)], cwd=home,
                          env=grader_env(home, **env), capture_output=True, text=True, timeout=300)


def test_fresh_machine_downloads_vocab_and_weights_once(assets, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with LoopbackServer({VOCAB: assets["vocab"], WEIGHTS: assets["ckpt"]}) as server:
        env = {"HF_ENDPOINT": server.base, "CATR_CHECKPOINT_URL": server.url(WEIGHTS)}
        for run in range(2):
            proc = hw3_2(assets["images"], f"out{run}", home, **env)
            assert proc.returncode == 0, proc.stderr[-2000:]
            assert (home / f"out{run}" / "ski.png").read_bytes()[:4] == b"\x89PNG"
        assert server.hits == {VOCAB: 1, WEIGHTS: 1}  # the second run used both caches
    cached = list((home / ".cache" / "huggingface" / "hub").rglob("vocab.txt"))
    assert len(cached) == 1 and cached[0].read_text() == assets["vocab"].read_text()
    cached = list((home / ".cache" / "torch" / "hub" / "checkpoints").iterdir())
    assert [p.name for p in cached] == [cache_path(server.url(WEIGHTS)).name]  # keyed by the whole URL
    np.testing.assert_array_equal(np.load(home / "out0" / "ski.npy"), np.load(home / "out1" / "ski.npy"))

    # HF_HOME moves the hub cache: an empty one, offline, is a one-line error naming --vocab.
    proc = hw3_2(assets["images"], "out2", home, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1",
                 CATR_CHECKPOINT=str(assets["ckpt"]))
    assert_one_line_error(proc, "no BERT uncased vocabulary", "--vocab")
    assert not (home / "out2").exists()  # a failed run leaves no folder behind


def test_failed_weight_download_is_one_line_and_leaves_nothing(assets, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with LoopbackServer({}) as server:
        proc = hw3_2(assets["images"], "out", home, CATR_VOCAB=str(assets["vocab"]),
                     CATR_CHECKPOINT_URL=server.url(WEIGHTS))
    assert_one_line_error(proc, "could not download CATR weights", "--checkpoint")
    assert not (home / "out").exists()
    ckpts = home / ".cache" / "torch" / "hub" / "checkpoints"
    assert not ckpts.exists() or list(ckpts.iterdir()) == []


def test_a_bad_checkpoint_leaves_no_output_folder(assets, tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"junk")
    proc = hw3_2(assets["images"], tmp_path / "out", tmp_path, CATR_CHECKPOINT=str(tmp_path / "junk.pth"),
                 CATR_VOCAB=str(assets["vocab"]))
    assert_one_line_error(proc, "cannot read CATR checkpoint")
    assert not (tmp_path / "out").exists()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """$TORCH_HOME, not torch.hub.set_dir: set_dir pins the hub folder for the rest of the session, so a later test's
    $TORCH_HOME would be ignored."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_hub"))
    assert torch.hub.get_dir() == str(tmp_path / "torch_hub" / "hub")
    yield tmp_path / "torch_hub" / "hub" / "checkpoints"


def test_two_urls_with_one_file_name_get_their_own_cache_files(torch_home, tmp_path):
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save({"model": {"w": torch.zeros(1)}}, a)
    torch.save({"model": {"w": torch.ones(1)}}, b)
    with LoopbackServer({"/a/checkpoint.pth": a, "/b/checkpoint.pth": b}) as server:
        for _ in range(2):
            assert fetch_checkpoint(server.url("/a/checkpoint.pth"))["model"]["w"].item() == 0
            assert fetch_checkpoint(server.url("/b/checkpoint.pth"))["model"]["w"].item() == 1
        assert server.hits == {"/a/checkpoint.pth": 1, "/b/checkpoint.pth": 1}
    assert len(list(torch_home.iterdir())) == 2
    release = "https://github.com/saahiluppal/catr/releases/download/0.2/weight493084032.pth"
    assert cache_path(release).name == "weight493084032.pth"  # where torch.hub and other tools put it too


def test_a_release_whose_sha256_differs_is_refused_and_not_cached(torch_home, tmp_path, monkeypatch):
    import hashlib
    weights = tmp_path / "w.pth"
    torch.save({"model": {"w": torch.zeros(1)}}, weights)
    with LoopbackServer({WEIGHTS: weights}) as server:
        url = server.url(WEIGHTS)
        monkeypatch.setitem(RELEASE_SHA256, url, "0" * 64)
        with pytest.raises(UserError, match="sha256 differs"):
            fetch_checkpoint(url)
        assert not cache_path(url).exists()
        monkeypatch.setitem(RELEASE_SHA256, url, hashlib.sha256(weights.read_bytes()).hexdigest())
        assert fetch_checkpoint(url)["model"]["w"].item() == 0 and cache_path(url).is_file()


class NotATensor:
    pass


@pytest.mark.parametrize("make, fragments", [
    (lambda p: p.write_text("hello, I am a text file\n"), ["not a PyTorch checkpoint", "b'hello, I am a te'"]),
    (lambda p: torch.save({"model": NotATensor()}, p), ["never unpickles"]),
    (lambda p: __import__("safetensors.torch").torch.save_file({"w": torch.zeros(2)}, str(p)),
     ["a .safetensors file", "hw3_2.sh needs a CATR .pth"]),
])
def test_a_file_that_is_no_catr_checkpoint_is_said_plainly(tmp_path, make, fragments):
    """A text file gave 'KeyError: 101'; a pickled object gave torch's advice to load with weights_only=False,
    i.e. to unpickle an untrusted file."""
    from catr.hub import load_checkpoint_file
    path = tmp_path / "ck.pth"
    make(path)
    with pytest.raises(UserError) as e:
        load_checkpoint_file(path)
    message = str(e.value)
    assert "weights_only" not in message and "Re-running" not in message and "\n" not in message
    for f in fragments:
        assert f in message, message


def test_a_problem_1_checkpoint_given_to_catr_names_what_differs(tmp_path):
    import timm
    from catr.caption import create_model
    path = tmp_path / "vit.pth"
    torch.save({"model": timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32).state_dict()}, path)
    with pytest.raises(UserError) as e:
        create_model(checkpoint=path, config=tiny_config())
    message = str(e.value)
    assert "tensors missing (e.g. " in message and "not CATR's (e.g. " in message and "timm ViT" in message

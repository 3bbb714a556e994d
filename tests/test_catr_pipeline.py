"""catr/pipeline.py and hw3_2.sh, end to end on generated images and a small random CATR."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from catr.pipeline import caption_folder, caption_one
from catr.tokenizer import CaptionTokenizer
from catr_tiny import IMAGES, tiny_config, tiny_model, write_images, write_vocab
from helpers import assert_one_line_error, run
from hw3io import UserError



@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("catr")
    images = write_images(root / "images")
    (images / "notes.txt").write_text("not an image")
    model = tiny_model()
    ckpt = root / "small_catr.pth"
    torch.save({"model": model.state_dict(), "catr_config": tiny_config().to_dict()}, ckpt)
    return {"images": images, "ckpt": ckpt, "vocab": write_vocab(root / "vocab.txt"), "model": model}


def test_hw3_2_end_to_end(assets, tmp_path):
    out = tmp_path / "out dir"
    proc = run(["bash", "hw3_2.sh", str(assets["images"]), str(out)], CATR_CHECKPOINT=str(assets["ckpt"]),
               CATR_VOCAB=str(assets["vocab"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.glob("*.png")) == ["bike.png", "girl.png", "sheep.png", "ski.png",
                                                         "umbrella.png"]
    tok = CaptionTokenizer(assets["vocab"])
    for name, (w, h) in IMAGES.items():
        stem = name.rsplit(".", 1)[0]
        scale = 299 / max(w, h)
        rh, rw = int(h * scale), int(w * scale)
        maps = np.load(out / f"{stem}.npy")
        assert maps.shape[1:] == (math.ceil(rh / 16), math.ceil(rw / 16))  # the true grid, not 19x19
        # The same caption and maps as decoding in this process:
        small, dec, text = caption_one(assets["model"], tok, Image.open(assets["images"] / name).convert("RGB"), "cpu")
        assert (out / f"{stem}.txt").read_text().strip() == text
        assert maps.shape[0] == len(dec.ids) + dec.ended
        assert np.allclose(maps, dec.maps.numpy(), atol=1e-5)
        assert Image.open(out / f"{stem}.png").size[0] > 800  # five tiles a row


def test_heads_and_layer_flags(assets, tmp_path):
    proc = run(["python3", "p2_caption_attn.py", "--images", str(assets["images"]), "--output-dir", str(tmp_path),
                "--checkpoint", str(assets["ckpt"]), "--vocab", str(assets["vocab"]), "--heads", "--layer", "0"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert np.load(tmp_path / "ski.npy").shape[1:] == (4, 19, 19)


def test_bad_images_listed_and_nothing_written(assets, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    Image.new("RGB", (50, 40)).save(images / "ok.jpg")
    (images / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    (images / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    proc = run(["python3", "p2_caption_attn.py", "--images", str(images), "--output-dir", str(out),
                "--checkpoint", str(assets["ckpt"]), "--vocab", str(assets["vocab"])])
    assert_one_line_error(proc, "broken.jpg", "empty.png", "2 unreadable")
    assert not out.exists()


def test_input_errors(assets, tmp_path):
    with pytest.raises(UserError, match="image folder not found"):
        caption_folder(tmp_path / "nope", tmp_path / "o", model=assets["model"], vocab=assets["vocab"])
    with pytest.raises(UserError, match="layer 5 out of range"):
        caption_folder(assets["images"], tmp_path / "o", model=assets["model"], vocab=assets["vocab"], layer=5)
    d = tmp_path / "dupes"
    d.mkdir()
    Image.new("RGB", (20, 20)).save(d / "a.jpg")
    Image.new("RGB", (20, 20)).save(d / "a.png")
    with pytest.raises(UserError, match="share a name stem"):
        caption_folder(d, tmp_path / "o", model=assets["model"], vocab=assets["vocab"])
    proc = run(["python3", "p2_caption_attn.py", "--images", str(assets["images"]), "--output-dir",
                str(tmp_path / "o2"), "--vocab", str(tmp_path / "missing-vocab.txt")])
    assert_one_line_error(proc, "vocabulary file not found")

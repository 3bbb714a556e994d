"""catr/pipeline.py and hw3_2.sh, end to end on generated images and a small random CATR."""
import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from catr.explain import METHODS, ExplainOptions
from catr.pipeline import caption_folder, caption_one
from catr.preprocess import preprocess
from catr.relevance import caption_sequence, relevance_maps
from catr.tokenizer import CaptionTokenizer
from catr_tiny import IMAGES, install_fake_explanations, tiny_config, tiny_model, write_images, write_vocab
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


def test_hw3_2_captions_what_decodes_and_fails_naming_the_rest(assets, tmp_path):
    """A grader's folder with a broken and a truncated image still gets every PNG it can have."""
    images = tmp_path / "imgs"
    images.mkdir()
    Image.new("RGB", (50, 40)).save(images / "ok.jpg")
    good = (assets["images"] / "ski.jpg").read_bytes()
    (images / "cut.jpg").write_bytes(good[:len(good) * 2 // 3])
    (images / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    (images / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    proc = run(["bash", "hw3_2.sh", str(images), str(out)], CATR_CHECKPOINT=str(assets["ckpt"]),
               CATR_VOCAB=str(assets["vocab"]))
    assert proc.returncode == 1
    assert_one_line_error(proc, "2 image(s) do not decode", "broken.jpg", "empty.png")
    assert "warning: " in proc.stderr and "cut.jpg is truncated" in proc.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["cut.png", "ok.png"]


def test_input_errors(assets, tmp_path):
    with pytest.raises(UserError, match="image folder not found"):
        caption_folder(tmp_path / "nope", tmp_path / "o", model=assets["model"], vocab=assets["vocab"])
    with pytest.raises(UserError, match="layer 5 out of range"):
        caption_folder(assets["images"], tmp_path / "o", model=assets["model"], vocab=assets["vocab"], layer=5)
    with pytest.raises(UserError, match="--explain relevance has none"):
        caption_folder(assets["images"], tmp_path / "o", model=assets["model"], vocab=assets["vocab"], heads=True,
                       explain=ExplainOptions("relevance"))
    d = tmp_path / "dupes"
    d.mkdir()
    Image.new("RGB", (20, 20)).save(d / "a.jpg")
    Image.new("RGB", (20, 20)).save(d / "a.png")
    with pytest.raises(UserError, match="share a name stem"):
        caption_folder(d, tmp_path / "o", model=assets["model"], vocab=assets["vocab"])
    proc = run(["python3", "p2_caption_attn.py", "--images", str(assets["images"]), "--output-dir",
                str(tmp_path / "o2"), "--vocab", str(tmp_path / "missing-vocab.txt")])
    assert_one_line_error(proc, "vocabulary file not found")
    assert proc.stderr.startswith("error: ")  # before any note that the run would fall back to the CPU


def test_a_batch_of_same_size_images_captions_as_one_at_a_time(assets):
    from catr.pipeline import caption_batch
    tok = CaptionTokenizer(assets["vocab"])
    g = torch.Generator().manual_seed(3)
    images = [Image.fromarray((torch.rand(100, 150, 3, generator=g) * 255).byte().numpy()) for _ in range(3)]
    images.append(Image.open(assets["images"] / "girl.png").convert("RGB"))  # another size: its own batch
    batch = caption_batch(assets["model"], tok, images, "cpu")
    for img, (small, dec, text) in zip(images, batch):
        one_small, one, one_text = caption_one(assets["model"], tok, img, "cpu")  # a batch of one
        assert (text, dec.ids, dec.ended) == (one_text, one.ids, one.ended) and small.size == one_small.size
        assert torch.allclose(dec.maps, one.maps, atol=1e-5)


def test_beam_flag_and_its_environment_default(assets, tmp_path):
    env = dict(CATR_CHECKPOINT=str(assets["ckpt"]), CATR_VOCAB=str(assets["vocab"]))
    args = ["python3", "p2_caption_attn.py", "--images", str(assets["images"])]
    # (--beam 1 decoding exactly as greedy is test_catr_decode's test_beam_one_is_greedy_...)
    beam3 = tmp_path / "beam3"
    proc = run([*args, "--output-dir", str(beam3)], CATR_BEAM="3", **env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    tok = CaptionTokenizer(assets["vocab"])
    for txt in sorted(beam3.glob("*.txt")):
        small, dec, text = caption_one(assets["model"], tok, Image.open(next(assets["images"].glob(txt.stem + ".*")))
                                       .convert("RGB"), "cpu", beam=3)
        assert (beam3 / txt.name).read_text().strip() == text  # CATR_BEAM=3 is beam search, not greedy
    assert_one_line_error(run([*args, "--output-dir", str(tmp_path / "x"), "--beam", "0"], **env), "--beam")


def test_a_bad_catr_beam_is_a_usage_error_not_a_traceback(tmp_path):
    for value in ("three", "0", "-2"):
        proc = run(["python3", "p2_caption_attn.py", "--images", str(tmp_path), "--output-dir", str(tmp_path / "o")],
                   CATR_BEAM=value)
        assert proc.returncode == 2
        assert_one_line_error(proc, f"$CATR_BEAM) must be a whole number of at least 1, not '{value}'")


@pytest.fixture(scope="module")
def fast_model():
    # The tiny preset's CNN at 96 px (12 x 12 cells at most) and captions of 11 tokens at most: fewer tiles to draw
    # (seed 3: beam search and greedy decoding disagree)
    return tiny_model(seed=3, backbone="convnet", max_dim=96, max_position_embeddings=12)


def test_every_explain_method_writes_the_files_attention_writes(assets, fast_model, tmp_path, monkeypatch):
    install_fake_explanations(monkeypatch)  # rise and occlusion through stand-ins of the shared package
    images = tmp_path / "images"
    images.mkdir()
    for name in ("bike.jpg", "ski.jpg"):  # two sizes: two greedy batches
        shutil.copy(assets["images"] / name, images / name)
    options = {"attention": ExplainOptions(), "relevance": ExplainOptions("relevance"),
               "rise": ExplainOptions("rise", masks=3, cells=2, seed=4),
               "occlusion": ExplainOptions("occlusion", cells=2)}
    assert sorted(options) == sorted(METHODS)
    for method, explain in options.items():
        caption_folder(images, tmp_path / method, model=fast_model, vocab=assets["vocab"], explain=explain)
    ref = tmp_path / "attention"
    for method in options:
        out = tmp_path / method
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())
        for stem in ("bike", "ski"):
            meta, ref_meta = (json.loads((d / f"{stem}.json").read_text()) for d in (out, ref))
            assert meta["method"] == method and meta["caption"] == ref_meta["caption"]
            assert meta["tokens"] == ref_meta["tokens"] and meta["grid"] == ref_meta["grid"]
            maps = np.load(out / f"{stem}.npy")
            assert maps.shape == np.load(ref / f"{stem}.npy").shape and np.isfinite(maps).all()
            assert Image.open(out / f"{stem}.png").size == Image.open(ref / f"{stem}.png").size
            assert meta["layer"] == (-1 if method == "attention" else None)
    rise = json.loads((tmp_path / "rise" / "ski.json").read_text())
    assert (rise["masks"], rise["cells"], rise["seed"]) == (3, 2, 4)


def test_explanations_explain_the_beam_caption(assets, fast_model):
    tok = CaptionTokenizer(assets["vocab"])
    img = Image.open(assets["images"] / "girl.png").convert("RGB")
    small, dec, text = caption_one(fast_model, tok, img, "cpu", beam=3, explain=ExplainOptions("relevance"))
    assert dec.ids != caption_one(fast_model, tok, img, "cpu")[1].ids
    _, x, mask = preprocess(img, fast_model.config.max_dim)
    seq = caption_sequence(tok.start_id, tok.end_id, dec.ids, dec.ended)
    assert torch.equal(dec.maps, relevance_maps(fast_model, x, mask, seq))


def test_explain_flag(assets, tmp_path):
    from p2_caption_attn import get_args_parser
    for method in METHODS:  # the script lists its choices without importing torch: the same ones
        a = get_args_parser().parse_args(["--images", "i", "--output-dir", "o", "--explain", method])
        assert (a.explain, a.masks, a.cells, a.seed) == (method, 1000, 8, 0)
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(assets["images"] / "ski.jpg", images / "ski.jpg")
    args = ["python3", "p2_caption_attn.py", "--images", str(images), "--checkpoint", str(assets["ckpt"]),
            "--vocab", str(assets["vocab"])]
    proc = run([*args, "--output-dir", str(tmp_path / "o"), "--explain", "relevance"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "o" / "ski.json").read_text())["method"] == "relevance"
    assert np.load(tmp_path / "o" / "ski.npy").shape[1:] == (19, 19)
    proc = run([*args, "--output-dir", str(tmp_path / "x"), "--explain", "gradcam"])
    assert proc.returncode == 2 and "invalid choice: 'gradcam'" in proc.stderr

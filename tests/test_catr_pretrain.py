"""Pretraining the tiny preset's ConvNet (catr.pretrain) and starting p2_train.py from it."""
import json
import math

import pytest
import torch

from helpers import assert_one_line_error, run


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from synth.captionworld import write_split
    root = tmp_path_factory.mktemp("scenes")
    write_split(root, 64, seed=3)
    return root


@pytest.fixture(scope="module")
def pretrained(scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("convnet") / "convnet.safetensors"
    proc = run(["python3", "-m", "catr.pretrain", "--images", str(scenes / "images"), "--objects",
                str(scenes / "objects.json"), "--output", str(out), "--epochs", "6", "--max-dim", "96",
                "--lr", "3e-3"])
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_box_features_average_the_cells_under_each_box():
    from catr.pretrain import box_features
    f = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    # stride 8: pixels [8, 24) x [0, 9) cover columns 1-2 and rows 0-1 (9 px reach into row 1)
    got = box_features(f, [[8, 0, 16, 9], [40, 24, 1, 1]], stride=8)
    assert torch.equal(got[0], f[:, 0:2, 1:3].mean((1, 2)))
    assert torch.equal(got[1], f[:, 3, 5])  # a box smaller than a cell still gets its cell


def test_pretraining_learns_the_words_of_boxed_objects(scenes, pretrained):
    """The loss falls well below the best an image-blind model can do (each word's yes/no entropy at its
    frequency among the objects): the features name what is in each box."""
    out, proc = pretrained
    objects = [o for objs in json.loads((scenes / "objects.json").read_text()).values() for o in objs]
    words = {w for o in objects for w in o["words"]}
    freq = [sum(w in o["words"] for o in objects) / len(objects) for w in words]
    blind = sum(-p * math.log(p) - (1 - p) * math.log(1 - p) for p in freq)  # nats per object
    lines = [line for line in proc.stdout.splitlines() if line.startswith("pretrain epoch")]
    losses = [float(line.split("loss ")[1].split(",")[0]) for line in lines]
    assert len(losses) == 6
    assert losses[-1] < 0.7 * blind < losses[0], (losses, blind)


def test_p2_train_starts_its_convnet_from_the_file(pretrained, tmp_path):
    import safetensors.torch
    from catr.config import CaptionTrainConfig
    from catr.train import initial_model
    from hw3io import UserError
    out, _ = pretrained
    saved = safetensors.torch.load_file(str(out))
    meta = json.loads(safetensors.safe_open(str(out), "pt").metadata()["meta"])
    assert set(meta["words"]) == {"red", "green", "blue", "yellow", "pink", "cyan", "circle", "square", "triangle",
                                  "cross"}
    model, _ = initial_model(CaptionTrainConfig(preset="tiny", backbone_weights=str(out)).resolved(), 30, 0)
    state = model.backbone[0].state_dict()
    assert state.keys() == saved.keys() and all(torch.equal(state[k], v) for k, v in saved.items())
    with pytest.raises(UserError, match="one"):
        initial_model(CaptionTrainConfig(preset="tiny", backbone_weights=str(out), init=str(out)).resolved(), 30, 0)
    with pytest.raises(UserError, match="ImageNet"):
        initial_model(CaptionTrainConfig(preset="catr", backbone_weights=str(out)).resolved(), 30, 0)


def test_bad_backbone_files_are_one_error_line(pretrained, tmp_path):
    import safetensors.torch
    from catr.backbone import ConvNet
    from catr.pretrain import FORMAT, load_convnet
    from hw3io import UserError
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    small = ConvNet(widths=(8, 8)).state_dict()
    safetensors.torch.save_file(small, str(tmp_path / "small.safetensors"), metadata={"format": FORMAT})
    for name, fragment in [("missing.safetensors", "not found"), ("junk.safetensors", "not a valid"),
                           ("plain.safetensors", "catr.pretrain"), ("small.safetensors", "does not match")]:
        with pytest.raises(UserError, match=fragment):
            load_convnet(ConvNet(), tmp_path / name)


def test_bad_objects_files_are_one_error_line_and_write_nothing(scenes, tmp_path):
    from catr.pretrain import read_objects
    from hw3io import UserError
    (tmp_path / "objects.json").write_text(json.dumps({"nowhere.png": [{"words": ["red", "circle"],
                                                                       "box": [0, 0, 9, 9]}]}))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "empty.json").write_text("{}")
    for objects, fragment in [("objects.json", "missing"), ("list.json", "not an objects"), ("none.json", "not found"),
                              ("empty.json", "no objects")]:
        with pytest.raises(UserError, match=fragment):
            read_objects(tmp_path / objects, scenes / "images", 96)
    out = tmp_path / "w.safetensors"
    proc = run(["python3", "-m", "catr.pretrain", "--images", str(scenes / "images"), "--objects",
                str(tmp_path / "objects.json"), "--output", str(out)])
    assert_one_line_error(proc, "missing")
    assert not out.exists()

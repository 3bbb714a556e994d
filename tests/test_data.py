import random

import pytest
import torch

from hw3io import UserError
from vitpet.data import ImageFolderDataset, build_transforms, build_view_transform, has_labels, parse_label
from vitpet.model import build_model, resolve_model_data_config


@pytest.mark.parametrize("name,label", [("26_5064.jpg", 26), ("0_1.png", 0), ("36_9_extra.JPG", 36)])
def test_parse_label(name, label):
    assert parse_label(name, 37) == label


@pytest.mark.parametrize("name", ["cat.jpg", "x_12.jpg", "_12.jpg", "-1_3.jpg", "12.jpg"])
def test_parse_label_rejects_names_without_label(name):
    with pytest.raises(UserError, match=name.replace(".", r"\.")):
        parse_label(name)


def test_parse_label_range():
    with pytest.raises(UserError, match="outside 0..36"):
        parse_label("37_1.jpg", 37)
    assert has_labels(["1_2.jpg", "3_4.jpg"]) and not has_labels(["1_2.jpg", "dog.jpg"])


def test_transforms_follow_the_model_data_config():
    model = build_model("vit_demo_patch8", pretrained=False, img_size=48)
    cfg = resolve_model_data_config(model)
    assert cfg["input_size"] == [3, 48, 48]  # not the pretrained_cfg's 224
    norm = build_transforms(cfg, is_training=False).transforms[-1]
    assert torch.allclose(norm.mean, torch.tensor(cfg["mean"])) and torch.allclose(norm.std, torch.tensor(cfg["std"]))


def test_view_transform_is_eval_geometry_without_normalisation(pet_data):
    cfg = resolve_model_data_config(build_model("vit_demo_patch8", pretrained=False))
    ds_norm = ImageFolderDataset(pet_data / "val", build_transforms(cfg, False), labelled=True)
    ds_view = ImageFolderDataset(pet_data / "val", build_view_transform(cfg), labelled=True)
    x, v = ds_norm[0][0], ds_view[0][0]
    mean, std = torch.tensor(cfg["mean"])[:, None, None], torch.tensor(cfg["std"])[:, None, None]
    assert torch.allclose((v - mean) / std, x, atol=1e-5)
    assert v.min() >= 0 and v.max() <= 1


def test_augmentation_is_a_function_of_seed_epoch_and_index(pet_data):
    cfg = resolve_model_data_config(build_model("vit_demo_patch8", pretrained=False))
    ds = ImageFolderDataset(pet_data / "train", build_transforms(cfg, True, color_jitter=0.4), labelled=True, seed=3)
    a = ds[5][0]
    torch.manual_seed(123)
    random.seed(7)
    before = torch.rand(1)
    torch.manual_seed(123)
    b = ds[5][0]
    assert torch.equal(a, b)  # global RNG state does not matter ...
    assert torch.equal(torch.rand(1), before)  # ... and is not consumed
    ds.set_epoch(1)
    assert not torch.equal(ds[5][0], a)  # a new epoch draws new augmentation


def test_dataset_labels_from_names(pet_data):
    ds = ImageFolderDataset(pet_data / "val", lambda im: im, labelled=True, num_classes=37)
    assert len(ds) == 74 and sorted(set(ds.targets)) == list(range(37))
    for p, t in zip(ds.paths, ds.targets):
        assert p.name.startswith(f"{t}_")


def test_augmentation_seeding_leaves_cuda_generators_alone(pet_data, monkeypatch):
    """With workers=0 the per-image seeding runs in the training process: it must not reseed the GPUs' dropout
    stream (torch.manual_seed would, through torch.cuda.manual_seed_all)."""
    cfg = resolve_model_data_config(build_model("vit_demo_patch8", pretrained=False))
    ds = ImageFolderDataset(pet_data / "train", build_transforms(cfg, True), labelled=True)
    torch.manual_seed(123)
    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(seed))
    before = torch.get_rng_state()
    a, b = ds[0][0], ds[0][0]
    assert torch.equal(a, b) and calls == []
    assert torch.equal(torch.get_rng_state(), before)  # the CPU stream is untouched too

import csv
import shutil

import pandas as pd
import pytest
from PIL import Image

from hw3io import UserError
from vitpet.inference import predict_folder, run_inference
from vitpet.model import load_checkpoint


@pytest.fixture()
def val_copy(pet_data, tmp_path):
    d = tmp_path / "imgs"
    shutil.copytree(pet_data / "val", d)
    return d


def test_csv_format_sorted_and_accuracy(tiny_checkpoint, pet_data, tmp_path):
    out = tmp_path / "deep" / "er" / "pred.csv"
    r = run_inference(tiny_checkpoint, pet_data / "val", out, batch_size=16, workers=0, device="cpu")
    lines = out.read_text().splitlines()
    assert lines[0] == "filename,label" and len(lines) == 75
    rows = list(csv.reader(lines[1:]))
    names = [n for n, _ in rows]
    assert names == sorted(names) and all(0 <= int(l) < 37 for _, l in rows)
    truth = [int(n.split("_")[0]) for n in names]
    assert r["accuracy"] == pytest.approx(sum(int(l) == t for (_, l), t in zip(rows, truth)) / 74)


def test_awkward_file_names_are_quoted(tiny_checkpoint, tmp_path):
    d = tmp_path / "odd dir"
    d.mkdir()
    for name in ['a,b.jpg', 'quote".png', "space name.jpg", "plain.JPG"]:
        Image.new("RGB", (30, 20), (9, 99, 199)).save(d / name, format="PNG" if name.endswith("png") else "JPEG")
    out = tmp_path / "o.csv"
    run_inference(tiny_checkpoint, d, out, workers=0, device="cpu")
    df = pd.read_csv(out)
    assert sorted(df["filename"]) == sorted(['a,b.jpg', 'quote".png', "space name.jpg", "plain.JPG"])
    assert list(df.columns) == ["filename", "label"]


def test_predictions_do_not_depend_on_batch_size(tiny_checkpoint, pet_data):
    model, cfg = load_checkpoint(tiny_checkpoint)
    a, _ = predict_folder(model, cfg["data_config"], pet_data / "val", batch_size=1, workers=0, show_progress=False)
    b, _ = predict_folder(model, cfg["data_config"], pet_data / "val", batch_size=32, workers=2, show_progress=False)
    pd.testing.assert_frame_equal(a, b)


def _break_some(d):
    (d / "0_zero.jpg").write_bytes(b"")
    good = next(d.glob("1_*.jpg")).read_bytes()
    (d / "1_trunc.jpg").write_bytes(good[:200])
    (d / "2_text.png").write_text("not an image")


def test_unreadable_images_listed_together_and_nothing_written(tiny_checkpoint, val_copy, tmp_path):
    _break_some(val_copy)
    out = tmp_path / "pred.csv"
    with pytest.raises(UserError) as e:
        run_inference(tiny_checkpoint, val_copy, out, workers=0, device="cpu")
    for name in ["0_zero.jpg", "1_trunc.jpg", "2_text.png"]:
        assert name in str(e.value)
    assert "3 unreadable" in str(e.value) and not out.exists()


def test_skip_unreadable_writes_the_rest(tiny_checkpoint, val_copy, tmp_path):
    _break_some(val_copy)
    out = tmp_path / "pred.csv"
    r = run_inference(tiny_checkpoint, val_copy, out, workers=0, device="cpu", skip_unreadable=True)
    assert len(pd.read_csv(out)) == 74 and len(r["skipped"]) == 3


def test_checkpoint_with_fewer_classes_than_labels(tiny_checkpoint, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.new("RGB", (20, 20)).save(d / "40_1.jpg")
    with pytest.raises(UserError, match="37 classes but the folder has label 40"):
        run_inference(tiny_checkpoint, d, tmp_path / "o.csv", workers=0, device="cpu")


def test_bad_paths(tiny_checkpoint, pet_data, tmp_path):
    with pytest.raises(UserError, match="image folder not found"):
        run_inference(tiny_checkpoint, tmp_path / "nope", tmp_path / "o.csv", workers=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        run_inference(tiny_checkpoint, tmp_path / "empty", tmp_path / "o.csv", workers=0)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="cannot write"):
        run_inference(tiny_checkpoint, pet_data / "val", tmp_path / "afile" / "o.csv", workers=0)
    with pytest.raises(UserError, match="checkpoint not found"):
        run_inference(tmp_path / "missing.safetensors", pet_data / "val", tmp_path / "o.csv", workers=0)
    with pytest.raises(UserError, match="--eval needs"):
        d = tmp_path / "unl"
        d.mkdir()
        Image.new("RGB", (20, 20)).save(d / "dog.jpg")
        run_inference(tiny_checkpoint, d, tmp_path / "o.csv", workers=0, evaluate=True)

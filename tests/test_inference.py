import csv
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from helpers import assert_one_line_error, run
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
    a, *_ = predict_folder(model, cfg["data_config"], pet_data / "val", batch_size=1, workers=0, show_progress=False)
    b, *_ = predict_folder(model, cfg["data_config"], pet_data / "val", batch_size=32, workers=2, show_progress=False)
    pd.testing.assert_frame_equal(a, b)


def _break_some(d):
    """An empty file, a text file and a JPEG cut in half (its first rows still decode)."""
    (d / "0_zero.jpg").write_bytes(b"")
    good = next(d.glob("1_*.jpg")).read_bytes()
    (d / "1_trunc.jpg").write_bytes(good[:len(good) // 2])
    (d / "2_text.png").write_text("not an image")


def test_every_image_that_decodes_gets_its_line(tiny_checkpoint, val_copy, tmp_path):
    """A grader's folder with broken files still gets a CSV: the truncated JPEG predicted from its decodable part,
    the two files with nothing to decode left out and listed."""
    _break_some(val_copy)
    out = tmp_path / "pred.csv"
    r = run_inference(tiny_checkpoint, val_copy, out, workers=0, device="cpu")
    names = list(pd.read_csv(out)["filename"])
    assert len(names) == 75 and "1_trunc.jpg" in names and names == sorted(names)
    assert sorted(Path(p).name for p in r["skipped"]) == ["0_zero.jpg", "2_text.png"]
    assert [Path(p).name for p in r["partial"]] == ["1_trunc.jpg"]


def test_hw3_1_writes_the_rest_and_fails_naming_the_broken_files(tiny_checkpoint, val_copy, tmp_path):
    (val_copy / "9_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = next(val_copy.glob("3_*.jpg")).read_bytes()
    (val_copy / "3_truncated.jpg").write_bytes(good[:len(good) * 2 // 3])
    out = tmp_path / "pred.csv"
    proc = run(["bash", "hw3_1.sh", str(val_copy), str(out)], P1_CHECKPOINT=str(tiny_checkpoint))
    assert proc.returncode == 1, proc.stderr
    assert_one_line_error(proc, "1 image(s) do not decode", "9_corrupt.jpg")
    assert "warning: " in proc.stderr and "3_truncated.jpg is truncated" in proc.stderr
    names = list(pd.read_csv(out)["filename"])
    assert len(names) == 75 and "3_truncated.jpg" in names and "9_corrupt.jpg" not in names
    proc = run(["python3", "p1_inference.py", "--checkpoint", str(tiny_checkpoint), "--images", str(val_copy),
                "--output", str(out), "--skip-unreadable"])
    assert proc.returncode == 0 and "note: 1 image(s) do not decode" in proc.stderr


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


def test_input_errors_come_before_the_cpu_note(tiny_checkpoint, tmp_path):
    """On a machine without a GPU the CPU note used to come first, so the error was not the first thing read."""
    proc = run(["python3", "p1_inference.py", "--checkpoint", str(tiny_checkpoint), "--images",
                str(tmp_path / "nope"), "--output", str(tmp_path / "o.csv"), "--device", "auto"])
    assert proc.stderr.startswith("error: image folder not found"), proc.stderr

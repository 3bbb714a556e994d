"""Problem 1 as a user runs it: p1_train.py -> hw3_1.sh -> CSV, plus the scripts' error contract."""
import re

import pandas as pd
import pytest

from helpers import assert_one_line_error, run

SCRIPTS = ["p1_train.py", "p1_inference.py", "p1_visualize_pos.py", "p1_visualize_attn.py", "p2_caption_attn.py",
           "p1_publish.py", "p1_fetch.py", "hw3_report.py", "p2_train.py"]
HEAVY = ("torch", "torchvision", "timm", "matplotlib", "PIL", "numpy", "pandas", "tokenizers", "huggingface_hub")


MODULES = ["catr.pretrain"]  # run as python3 -m ...


@pytest.mark.parametrize("script", SCRIPTS + MODULES)
def test_help_answers_without_heavy_imports(script):
    """--help must answer at once (well under a second), so it may not import the heavy packages."""
    start = (f"runpy.run_module({script!r}, run_name='__main__', alter_sys=True)" if script in MODULES else
             f"runpy.run_path({script!r}, run_name='__main__')")
    code = (f"import runpy, sys; sys.argv = [{script!r}, '--help']; sys.path.insert(0, '.')\n"
            f"try: {start}\nexcept SystemExit: pass\n"
            f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = run(["python3", "-c", code])
    assert proc.returncode == 0 and "usage" in proc.stdout, proc.stderr
    assert "LOADED []" in proc.stdout


def test_training_writes_log_plots_and_checkpoints(trained):
    data, out, _ = trained
    log = pd.read_csv(out / "log.csv")
    assert list(log.columns) == ["epoch", "train_loss", "val_loss", "val_acc", "lr"]
    assert list(log["epoch"]) == [0, 1, 2, 3]
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]
    for name in ["best.safetensors", "final.safetensors", "last.safetensors", "curves.png", "confusion.png"]:
        assert (out / name).stat().st_size > 0
    from vitpet.model import read_checkpoint
    _, cfg = read_checkpoint(out / "best.safetensors")
    assert cfg["val_acc"] == pytest.approx(log["val_acc"].max())


def test_training_log_is_not_flooded_by_progress_bars(trained):
    """stderr is a pipe here, as in `make demo > log`: a few progress lines per epoch, not one per step."""
    _, _, proc = trained
    draws = len(re.findall(r"\d+/\d+ \[", proc.stderr))  # each rendering of a bar shows "n/total ["
    assert 4 <= draws <= 4 * 2 * 2, proc.stderr[-2000:]  # 4 epochs x (train, val) x (first, last); 18 steps each
    assert proc.stdout.count("val_acc") == 4


def test_hw3_1_end_to_end_beats_chance(trained, tmp_path):
    data, out, _ = trained
    csv = tmp_path / "with space" / "pred.csv"
    proc = run(["bash", "hw3_1.sh", str(data / "val"), str(csv)], P1_CHECKPOINT=str(out / "best.safetensors"))
    assert proc.returncode == 0, proc.stderr
    df = pd.read_csv(csv)
    truth = df["filename"].str.split("_").str[0].astype(int)
    acc = (df["label"] == truth).mean()
    assert len(df) == 37 * 4
    assert acc > 3 / 37  # chance is 1/37
    assert f"accuracy {acc:.4f}" in proc.stdout


def test_scripts_fail_with_one_line(tiny_checkpoint, tmp_path):
    assert_one_line_error(run(["python3", "p1_inference.py", "--checkpoint", str(tiny_checkpoint),
                               "--images", str(tmp_path / "nope"), "--output", str(tmp_path / "o.csv")]),
                          "image folder not found")
    (tmp_path / "c.safetensors").write_bytes(b"junk")
    assert_one_line_error(run(["python3", "p1_inference.py", "--checkpoint", str(tmp_path / "c.safetensors"),
                               "--images", str(tmp_path), "--output", str(tmp_path / "o.csv")]),
                          "not a valid checkpoint")
    assert_one_line_error(run(["python3", "p1_train.py", "--model", "vit_demo_patch8", "--no-pretrained"]),
                          "--data-dir")
    proc = run(["bash", "hw3_1.sh", "only-one-arg"])
    assert proc.returncode == 2 and "usage" in proc.stderr


def test_bad_training_file_name_is_named(tmp_path):
    from synth.pets import make_dataset
    data = make_dataset(tmp_path / "d", train_per_class=1, val_per_class=1, num_classes=3)
    (data / "train" / "holiday.jpg").write_bytes((next((data / "train").glob("*.jpg"))).read_bytes())
    proc = run(["python3", "p1_train.py", "--data-dir", str(data), "--model", "vit_demo_patch8", "--no-pretrained",
                "--num-classes", "3", "--output-dir", str(tmp_path / "o"), "--workers", "0"])
    assert_one_line_error(proc, "holiday.jpg")


def test_a_wrong_data_folder_is_said_before_any_weights_are_fetched(tmp_path, monkeypatch):
    """p1_train.py --data-dir nosuch used to try the hub (5 retries offline) before looking at the folder."""
    import vitpet.train
    from hw3io import UserError
    from vitpet.config import TrainConfig
    monkeypatch.setattr(vitpet.train, "build_model", lambda *a, **k: pytest.fail("weights fetched first"))
    with pytest.raises(UserError, match="image folder not found: .*nosuch.train"):
        vitpet.train.fit(TrainConfig(data_dir=str(tmp_path / "nosuch"), output_dir=str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()

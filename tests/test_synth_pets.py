"""synth/pets.py: the generated pet folders' side files are written whole or not at all."""
import os

from synth.pets import CLASS_NAMES, make_dataset


def test_class_names_and_boxes_are_written_atomically(tmp_path, monkeypatch):
    renamed = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renamed.append(os.path.basename(dst)), real(src, dst)))
    root = make_dataset(tmp_path / "d", train_per_class=1, val_per_class=1, num_classes=2)
    assert sorted(renamed) == ["boxes.json", "boxes.json", "classes.txt"]  # a temp file renamed onto each
    assert (root / "classes.txt").read_text() == "\n".join(CLASS_NAMES[:2]) + "\n"

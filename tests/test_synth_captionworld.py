"""synth/captionworld.py: COCO-format captions that name every object, boxes that hold them, a vocabulary that
covers every caption."""
import json

import numpy as np
from PIL import Image

from synth.captionworld import COLOUR_NAMES, main
from catr.tokenizer import CaptionTokenizer
from synth.pets import COLOURS


def test_world_files_and_captions(tmp_path):
    main([str(tmp_path), "--train", "40", "--val", "8", "--seed", "3"])
    tok = CaptionTokenizer(tmp_path / "vocab.txt")
    unk = tok.tok.token_to_id("[UNK]")
    ids = set()
    for split, n in (("train", 40), ("val", 8)):
        coco = json.loads((tmp_path / split / "captions.json").read_text())
        objects = json.loads((tmp_path / split / "objects.json").read_text())
        assert len(coco["images"]) == len(coco["annotations"]) == len(objects) == n
        for im, ann in zip(coco["images"], coco["annotations"]):
            ids.add(im["id"])
            assert ann["image_id"] == im["id"]
            img = Image.open(tmp_path / split / "images" / im["file_name"]).convert("RGB")
            assert img.size == (im["width"], im["height"])
            objs = objects[im["file_name"]]
            assert 1 <= len(objs) <= 3 and len({o["words"][0] for o in objs}) == len(objs)  # distinct colours
            for o in objs:
                assert " ".join(["a"] + o["words"]) in ann["caption"]
                x, y, w, h = o["box"]
                assert 0 <= x and x + w <= img.width and 0 <= y and y + h <= img.height
                # The object's colour really is inside its box.
                crop = np.asarray(img)[y:y + h, x:x + w].reshape(-1, 3).astype(int)
                colour = COLOURS[COLOUR_NAMES.index(o["words"][0])]
                assert (np.abs(crop - colour).sum(1) < 40).mean() > 0.1
            if len(objs) == 2:
                assert any(r in ann["caption"] for r in ("left of", "above", "below"))
            assert unk not in tok.encode(ann["caption"])
    assert len(ids) == 48  # train and val ids never collide
    shapes = {Image.open(p).size for p in (tmp_path / "train" / "images").iterdir()}
    assert any(w > h for w, h in shapes) and any(w < h for w, h in shapes) and any(w == h for w, h in shapes)

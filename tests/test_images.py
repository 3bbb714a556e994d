import numpy as np
import pytest
from PIL import Image

from hw3io import UserError, atomic_path, list_images, load_rgb


def test_list_images_filters_extensions_and_subfolders(tmp_path):
    for name in ["b.JPG", "a.png", "c.jpeg", "d.bmp", "e.WebP", "notes.txt", "f.gif"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG", "c.jpeg", "d.bmp", "e.WebP"]


def test_list_images_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        list_images(tmp_path / "missing")
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(UserError, match="no images"):
        list_images(tmp_path)
    Image.new("RGB", (4, 4)).save(tmp_path / "one.jpg")
    with pytest.raises(UserError, match="one.jpg is a file; give the folder that holds the images"):
        list_images(tmp_path / "one.jpg")  # a path that exists is never "not found"


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA", "1"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    img = Image.new("RGB", (10, 8), (200, 30, 40)).convert(mode)
    path = tmp_path / ("x.png" if mode != "CMYK" else "x.jpg")
    img.save(path)
    out = load_rgb(path)
    assert out.mode == "RGB" and out.size == (10, 8)


def test_transparent_pixels_go_over_white(tmp_path):
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    img.save(tmp_path / "t.png")
    assert load_rgb(tmp_path / "t.png").getpixel((0, 0)) == (255, 255, 255)


def test_16bit_grey_is_rescaled_not_clipped(tmp_path):
    arr = np.full((6, 6), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    Image.fromarray(arr).save(tmp_path / "g16.png")
    value = load_rgb(tmp_path / "g16.png").getpixel((0, 0))
    assert value[0] == value[1] == value[2] and abs(value[0] - 128) <= 1


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = load_rgb(tmp_path / "r.jpg")
    assert out.size == (20, 40)
    top, bottom = np.asarray(out)[:8].mean(), np.asarray(out)[-8:].mean()
    assert top > 200 and bottom < 50  # the left band ends up on top


def test_unreadable_files_raise_user_error(tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    good = tmp_path / "ok.jpg"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    (tmp_path / "trunc.jpg").write_bytes(good.read_bytes()[:100])
    for name in ["zero.jpg", "trunc.jpg"]:
        with pytest.raises(UserError, match=name):
            load_rgb(tmp_path / name)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"


def test_a_dangling_symlink_is_listed_and_unreadable(tmp_path):
    from hw3io import check_readable
    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "gone.jpg")
    (tmp_path / "c.jpg").symlink_to(tmp_path / "a.jpg")  # a working link is an image like any other
    (tmp_path / "d.jpg").symlink_to(tmp_path, target_is_directory=True)  # a link to a folder is not
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [p.name for p, _ in check_readable(list_images(tmp_path))] == ["b.jpg"]

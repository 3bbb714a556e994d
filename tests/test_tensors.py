"""hw3io.tensors: a file that is not a checkpoint says so; what the system refuses (permissions, memory) is said as
what it is, not as a bad checkpoint."""
import builtins

import pytest
import safetensors
import torch

from hw3io import UserError, read_tensors, save_tensors


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "t.safetensors"
    save_tensors(path, {"w": torch.ones(3)}, {"format": "x"})
    return path


def test_round_trip_and_garbage(saved, tmp_path):
    tensors, meta = read_tensors(saved, "checkpoint")
    assert torch.equal(tensors["w"], torch.ones(3)) and meta == {"format": "x"}
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(UserError, match="not a valid checkpoint"):
        read_tensors(bad, "checkpoint")


def test_permission_denied_is_said_as_it_is(saved, monkeypatch):
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if str(file) == str(saved):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(UserError, match=r"cannot read checkpoint .*: Permission denied$"):
        read_tensors(saved, "checkpoint")


def test_out_of_memory_is_said_as_it_is(saved, monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(safetensors, "safe_open", no_memory)
    with pytest.raises(UserError, match="out of memory reading training state"):
        read_tensors(saved, "training state")


@pytest.mark.parametrize("content, fragment", [
    (b"<!DOCTYPE html><html><body>Google Drive - virus scan warning</body></html>", "an HTML page"),
    (b"PK\x03\x04" + b"\x00" * 60, "a PyTorch .pth/.pt file"),
    (b"", "is empty"),
])
def test_a_file_of_another_kind_is_named(tmp_path, content, fragment):
    """The usual mix-ups: a shared-drive link that served its web page, a .pth given where a .safetensors belongs."""
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(content)
    with pytest.raises(UserError, match="not a valid checkpoint") as e:
        read_tensors(bad, "checkpoint")
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_brief_cuts_at_a_word_never_mid_word():
    from hw3io import brief
    e = OSError("We couldn't connect to the hub.\nCheck your internet connection or try again later.")
    assert brief(e) == "OSError: We couldn't connect to the hub."
    long = brief(RuntimeError("offline: please check your connection and try again later"), 40)
    assert long == "RuntimeError: offline: please check your connection ..." and "aga" not in long
    assert brief(ValueError()) == "ValueError"

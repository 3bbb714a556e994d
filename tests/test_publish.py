"""Where the graded P1 model comes from: p1_publish.py records it, hw3_1.sh downloads it with wget (loopback server)
and uses it only when its sha256 matches."""
import subprocess

import pandas as pd
import pytest

from helpers import ROOT, assert_one_line_error, grader_env, run, script_repo
from hw3io import UserError
from scripts.loopback import LoopbackServer
from vitpet.publish import accept_download, needs_download, publish, read_source, sha256_file

MODEL = "/m/p1_vit_b16.safetensors"


def test_publish_downloads_the_link_once_and_refuses_one_that_serves_another_file(tiny_checkpoint, tmp_path):
    url_file = tmp_path / "p1.url"
    page = b"<!DOCTYPE html><html><head><title>Google Drive</title></head><body>sign in</body></html>"
    with LoopbackServer({"/m.safetensors": tiny_checkpoint, "/share": page}) as server:
        with pytest.raises(UserError, match="does not serve .* it sent 88 bytes of HTML"):
            publish(tiny_checkpoint, server.url("/share"), url_file)
        assert not url_file.exists()
        with pytest.raises(UserError, match="could not download .*404"):
            publish(tiny_checkpoint, server.url("/missing"), url_file)
        r = publish(tiny_checkpoint, server.url("/m.safetensors"), url_file)
        assert server.hits["/m.safetensors"] == 1 and url_file.read_text().split()[1] == r["sha256"]


def test_publish_records_url_and_sha(tiny_checkpoint, tmp_path):
    url_file = tmp_path / "checkpoints" / "p1.url"
    r = publish(tiny_checkpoint, "https://example.org/m.safetensors", url_file, check=False)
    assert url_file.read_text() == f"https://example.org/m.safetensors {sha256_file(tiny_checkpoint)}\n"
    assert read_source(url_file) == ("https://example.org/m.safetensors", r["sha256"])
    assert read_source(url_file, "http://mirror/m") == ("http://mirror/m", r["sha256"])
    with pytest.raises(UserError, match="direct http"):
        publish(tiny_checkpoint, "runs/p1/best.safetensors", url_file, check=False)
    (tmp_path / "x.safetensors").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a valid checkpoint"):
        publish(tmp_path / "x.safetensors", "https://example.org/x", url_file, check=False)


def test_publish_script_prints_the_final_result(tiny_checkpoint, tmp_path):
    url_file = tmp_path / "p1.url"
    proc = run(["python3", "p1_publish.py", "--checkpoint", str(tiny_checkpoint), "--url", "https://e.org/m",
                "--url-file", str(url_file), "--no-check"])
    assert proc.returncode == 0, proc.stderr
    assert "val accuracy  0.5000 (epoch 3" in proc.stdout
    assert sha256_file(tiny_checkpoint) in proc.stdout and "bash hw3_1.sh" in proc.stdout


def test_source_errors(tmp_path):
    with pytest.raises(UserError, match="no model recorded"):
        read_source(tmp_path / "p1.url")
    with pytest.raises(UserError, match="no sha256"):
        read_source(tmp_path / "p1.url", "http://x/m")
    (tmp_path / "p1.url").write_text("http://x/m not-a-sha\n")
    with pytest.raises(UserError, match="URL SHA256"):
        read_source(tmp_path / "p1.url")


def test_needs_and_accepts_only_the_recorded_file(tiny_checkpoint, tmp_path):
    url_file = tmp_path / "p1.url"
    url_file.write_text(f"http://x/m {sha256_file(tiny_checkpoint)}\n")
    ckpt = tmp_path / "m.safetensors"
    assert needs_download(ckpt, url_file) == "http://x/m"
    (tmp_path / "m.safetensors.part").write_bytes(tiny_checkpoint.read_bytes()[:-10])  # cut short
    with pytest.raises(UserError, match="incomplete or not the published model"):
        accept_download(ckpt, url_file)
    assert not ckpt.exists() and not (tmp_path / "m.safetensors.part").exists()
    (tmp_path / "m.safetensors.part").write_bytes(tiny_checkpoint.read_bytes())
    accept_download(ckpt, url_file)
    assert sha256_file(ckpt) == sha256_file(tiny_checkpoint) and needs_download(ckpt, url_file) is None
    ckpt.write_bytes(b"tampered")
    assert needs_download(ckpt, url_file) == "http://x/m"


def _hw3_1(repo, images, csv, home, **env):
    return subprocess.run(["bash", str(repo / "hw3_1.sh"), str(images), str(csv)], cwd=home,
                          env=grader_env(home, **env), capture_output=True, text=True, timeout=300)


def test_hw3_1_downloads_checks_and_keeps_the_model(tiny_checkpoint, pet_data, tmp_path):
    repo, home = script_repo(tmp_path), tmp_path / "home"
    home.mkdir()
    good, bad = tiny_checkpoint.read_bytes(), tiny_checkpoint.read_bytes()[:1000]
    with LoopbackServer({MODEL: good, "/bad/m.safetensors": bad}) as server:
        proc = run(["python3", str(repo / "p1_publish.py"), "--checkpoint", str(tiny_checkpoint),
                    "--url", server.url(MODEL)])
        assert proc.returncode == 0, proc.stderr
        assert (repo / "checkpoints" / "p1.url").read_text().split()[0] == server.url(MODEL)
        assert server.hits[MODEL] == 1  # p1_publish.py checked the link
        server.hits.clear()
        kept = repo / "checkpoints" / "p1_vit_b16.safetensors"

        # A mirror that serves a truncated file: refused, nothing used, nothing written, nothing left in the way.
        proc = _hw3_1(repo, pet_data / "val", home / "a.csv", home, P1_CHECKPOINT_URL=server.url("/bad/m.safetensors"))
        assert_one_line_error(proc, "incomplete or not the published model: 1000 bytes starting")
        assert not kept.exists() and not (home / "a.csv").exists()
        assert list((repo / "checkpoints").iterdir()) == [repo / "checkpoints" / "p1.url"]

        # A failed download (404) is not used either.
        proc = _hw3_1(repo, pet_data / "val", home / "a.csv", home, P1_CHECKPOINT_URL=server.url("/missing"))
        assert proc.returncode != 0 and "could not download" in proc.stderr and not kept.exists()

        # The recorded link: downloaded once, verified, predictions written.
        proc = _hw3_1(repo, pet_data / "val", "a.csv", home)
        assert proc.returncode == 0, proc.stderr
        assert sha256_file(kept) == sha256_file(tiny_checkpoint) and server.hits[MODEL] == 1
        assert len(pd.read_csv(home / "a.csv")) == 37 * 2

        # Kept and reused; a tampered copy is replaced by a fresh download.
        assert _hw3_1(repo, pet_data / "val", "b.csv", home).returncode == 0 and server.hits[MODEL] == 1
        kept.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
        proc = _hw3_1(repo, pet_data / "val", "c.csv", home)
        assert proc.returncode == 0 and server.hits[MODEL] == 2 and "downloading it again" in proc.stderr
        assert sha256_file(kept) == sha256_file(tiny_checkpoint)


def test_hw3_1_downloads_a_mirror_into_a_clone_without_checkpoints(tiny_checkpoint, pet_data, tmp_path):
    repo, home = script_repo(tmp_path), tmp_path / "home"
    home.mkdir()
    (repo / "checkpoints").rmdir()
    with LoopbackServer({MODEL: tiny_checkpoint.read_bytes()}) as server:
        proc = _hw3_1(repo, pet_data / "val", "a.csv", home,
                      P1_CHECKPOINT_URL=f"{server.url(MODEL)} {sha256_file(tiny_checkpoint)}")
    assert proc.returncode == 0, proc.stderr
    assert sha256_file(repo / "checkpoints" / "p1_vit_b16.safetensors") == sha256_file(tiny_checkpoint)


def test_the_download_check_needs_only_problem_1s_packages(tiny_checkpoint, tmp_path):
    url_file = tmp_path / "p1.url"
    url_file.write_text(f"http://127.0.0.1:9/m {sha256_file(tiny_checkpoint)}\n")
    code = ("import runpy, sys; sys.modules['tokenizers'] = sys.modules['huggingface_hub'] = None; "
            f"sys.argv = ['p1_fetch.py', 'need', {str(tmp_path / 'm.safetensors')!r}, '--url-file', {str(url_file)!r}]; "
            f"sys.path.insert(0, {str(ROOT)!r}); runpy.run_path({str(ROOT / 'p1_fetch.py')!r}, run_name='__main__')")
    proc = run(["python3", "-c", code])
    assert proc.returncode == 0 and proc.stdout.strip() == "http://127.0.0.1:9/m", proc.stderr


def test_hw3_1_without_a_recorded_model_says_what_to_do(pet_data, tmp_path):
    repo = script_repo(tmp_path)
    proc = _hw3_1(repo, pet_data / "val", tmp_path / "a.csv", tmp_path)
    assert_one_line_error(proc, "no model recorded", "P1_CHECKPOINT")


def test_missing_packages_end_in_one_line(tmp_path):
    from hw3io.errors import require_packages
    with pytest.raises(UserError, match="make setup"):
        require_packages(("numpy", "no_such_package_xyz"))
    # The scripts import third-party packages inside main(): a missing one is one line, not a traceback.
    code = ("import runpy, sys; sys.modules['torch'] = None; "
            f"sys.argv = ['p1_inference.py', '--checkpoint', 'c', '--images', '.', '--output', 'o.csv']; "
            f"sys.path.insert(0, {str(ROOT)!r}); "
            f"runpy.run_path({str(ROOT / 'p1_inference.py')!r}, run_name='__main__')")
    proc = run(["python3", "-c", code])
    assert_one_line_error(proc, "'torch' is missing", "pip install -r requirements.txt")

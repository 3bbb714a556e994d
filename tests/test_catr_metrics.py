"""The COCO caption evaluation behind ``python3 -m catr.metrics``: stored numbers from pycocoevalcap, exact and
foreign captions, references as COCO JSON or caption.txt, and a hw3_2.sh folder turned into results."""
import json

import pytest

from catr.metrics import caption_metrics, folder_results, java_available, match_keys, read_references, read_results
from helpers import ROOT, assert_one_line_error, run

FIXTURES = ROOT / "tests" / "fixtures" / "metrics"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())  # its "command" field says how it was computed


def fixture_set():
    refs, _ = read_references(FIXTURES / "captions.json")
    return read_results(FIXTURES / "results.json"), refs


def test_scores_match_the_stored_scorer_numbers_without_java():
    results, refs = fixture_set()
    scores = caption_metrics(results, refs, java=False)
    assert list(scores) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D"]
    assert scores == pytest.approx(EXPECTED["no_java"], abs=1e-9)


@pytest.mark.skipif(not java_available(), reason="no java: the PTB tokenizer and METEOR need it")
def test_scores_match_the_stored_scorer_numbers_with_java():
    results, refs = fixture_set()
    scores = caption_metrics(results, refs, java=True)
    assert scores == pytest.approx(EXPECTED["java"], abs=1e-9)


def test_an_exact_caption_scores_bleu4_one_and_another_images_caption_lower():
    _, refs = fixture_set()
    exact = {k: refs[k][0] for k in refs}
    swapped = {k: refs[k % len(refs) + 1][0] for k in refs}  # each image gets the next image's caption
    good, bad = caption_metrics(exact, refs, java=False), caption_metrics(swapped, refs, java=False)
    assert good["BLEU-4"] == pytest.approx(1.0)
    for metric in good:
        assert bad[metric] < good[metric] - 0.2, metric


def test_caption_txt_references_give_the_coco_files_scores():
    results, _ = fixture_set()
    refs, ids_by_name = read_references(FIXTURES / "caption.txt")
    assert set(refs) == {"0001.jpg", "0002.jpg", "0003.jpg", "0004.jpg"} and all(len(v) == 5 for v in refs.values())
    scores = caption_metrics(match_keys(results, ids_by_name), refs, java=False)
    assert scores == pytest.approx(EXPECTED["no_java"], abs=1e-9)


def test_hw3_2_folder_becomes_coco_results_with_the_references_ids(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    for name, caption in [("0002.jpg", "two dogs"), ("0004.jpg", "a bus")]:
        (folder / name.replace(".jpg", ".json")).write_text(json.dumps(
            {"image": f"/data/{name}", "caption": caption, "tokens": []}))
    _, ids_by_name = read_references(FIXTURES / "captions.json")
    assert folder_results(folder, ids_by_name) == [{"image_id": 2, "caption": "two dogs"},
                                                  {"image_id": 4, "caption": "a bus"}]
    saved = tmp_path / "results.json"
    proc = run(["python3", "-m", "catr.metrics", "--folder", folder, "--references", FIXTURES / "captions.json",
                "--save-results", saved, "--no-java"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(saved.read_text()) == [{"image_id": 2, "caption": "two dogs"}, {"image_id": 4, "caption": "a bus"}]
    assert "| CIDEr-D |" in proc.stdout and "2 reference image(s) have no result" in proc.stdout


def test_cli_says_when_java_is_missing(tmp_path):
    proc = run(["python3", "-m", "catr.metrics", "--results", FIXTURES / "results.json",
                "--references", FIXTURES / "captions.json"], timeout=120, PATH="/usr/bin/nonexistent")
    # PATH without java (script_env puts the venv's bin first, which has no java)
    assert proc.returncode == 0, proc.stderr
    assert "java not found" in proc.stdout and "METEOR" not in proc.stdout.split("java not found")[1].split("\n", 1)[1]


@pytest.mark.parametrize("args, fragment", [
    (["--results", "{tmp}/missing.json", "--references", "{refs}"], "results file not found"),
    (["--results", "{refs}", "--references", "{refs}"], "not a COCO results file"),
    (["--results", "{results}", "--references", "{tmp}/missing.json"], "reference file not found"),
    (["--results", "{results}", "--references", "{bad}"], "expected '<file name> <caption>'"),
    (["--results", "{foreign}", "--references", "{refs}"], "no reference caption"),
    (["--folder", "{tmp}"], "--references is required"),
])
def test_bad_input_is_one_error_line(tmp_path, args, fragment):
    (tmp_path / "bad.txt").write_text("0001.jpg\n")
    (tmp_path / "foreign.json").write_text(json.dumps([{"image_id": 99, "caption": "a cat"}]))
    names = dict(tmp=tmp_path, refs=FIXTURES / "captions.json", results=FIXTURES / "results.json",
                 bad=tmp_path / "bad.txt", foreign=tmp_path / "foreign.json")
    proc = run(["python3", "-m", "catr.metrics", *[a.format(**names) for a in args]], timeout=120)
    assert_one_line_error(proc, fragment)

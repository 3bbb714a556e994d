"""report/: the measured evidence (checked against brute force), the built report's numbers, and the page in a real
headless Chromium (skipped, with the reason, where none is installed; CI installs one)."""
import json
import re
import subprocess
import tempfile

import numpy as np
import pytest
from PIL import Image

from helpers import run
from report import evidence, render
from report.build import build_report


def test_pos_distance_profile_matches_brute_force():
    rng = np.random.default_rng(0)
    grid = (3, 4)
    sim = rng.uniform(-1, 1, (12, 12))
    prof = evidence.pos_distance_profile(sim, grid)
    cells = [divmod(i, 4) for i in range(12)]
    same_row_1 = [sim[i, j] for i in range(12) for j in range(12)
                  if cells[i][0] == cells[j][0] and abs(cells[i][1] - cells[j][1]) == 1]
    got = prof[(prof.relation == "same row") & (prof.distance == 1)]
    assert got["pairs"].item() == len(same_row_1) == 18
    assert got["mean_cosine"].item() == pytest.approx(np.mean(same_row_1))
    diag = [sim[i, j] for i in range(12) for j in range(12)
            if cells[i][0] != cells[j][0] and cells[i][1] != cells[j][1]
            and round(np.hypot(cells[i][0] - cells[j][0], cells[i][1] - cells[j][1])) == 3]
    got = prof[(prof.relation == "elsewhere") & (prof.distance == 3)]
    assert got["mean_cosine"].item() == pytest.approx(np.mean(diag))
    assert prof["pairs"].sum() == 12 * 11  # every ordered pair once, the diagonal left out


def test_per_class_and_confusions():
    t = [0, 0, 0, 1, 1, 2, 2, 2]
    p = [0, 1, 1, 1, 2, 2, 0, 1]
    np.testing.assert_allclose(evidence.per_class_accuracy(t, p, 4), [1 / 3, 1 / 2, 1 / 3, np.nan])
    assert evidence.most_confused(t, p, k=2) == [(0, 1, 2), (1, 2, 1)]


def test_token_peaks_find_planted_cells():
    maps = np.zeros((3, 6, 9))
    for k, (r, c) in enumerate([(0, 0), (5, 8), (3, 4)]):
        maps[k, r, c] = 1.0
    peaks = evidence.token_peaks(maps)
    assert [(p["row"], p["col"]) for p in peaks] == [(0, 0), (5, 8), (3, 4)]
    assert [p["where"] for p in peaks] == ["top left", "bottom right", "centre"]


@pytest.fixture(scope="module")
def built(trained, tmp_path_factory):
    """The report of the session's trained tiny ViT plus a two-image hw3_2 folder from a tiny CATR."""
    from catr.pipeline import caption_folder
    from catr_tiny import tiny_model, write_images, write_vocab
    data, run_dir, _ = trained
    root = tmp_path_factory.mktemp("report")
    images = write_images(root / "images")
    for p in images.iterdir():
        if p.name not in ("ski.jpg", "girl.png"):
            p.unlink()
    caption_folder(images, root / "p2", model=tiny_model(), vocab=write_vocab(root / "vocab.txt"))
    (root / "refs.txt").write_text("ski.jpg a person skiing\nski.jpg someone on skis\n")
    attn = sorted((data / "val").glob("*.jpg"))[:3]
    result = build_report(run_dir, root / "out", val_dir=data / "val", attn_images=attn, p2_dir=root / "p2",
                          p2_captions=root / "refs.txt", pdf=render.find_chromium() is not None)
    return result, data, run_dir


def test_report_states_the_numbers_the_scripts_give(built, tmp_path):
    result, data, run_dir = built
    proc = run(["python3", "p1_inference.py", "--checkpoint", str(run_dir / "best.safetensors"), "--images",
                str(data / "val"), "--output", str(tmp_path / "p.csv")])
    assert proc.returncode == 0, proc.stderr
    printed = float(re.search(r"accuracy (\d\.\d+)", proc.stdout).group(1))
    assert round(result["accuracy"], 4) == printed
    md = result["md"].read_text()
    assert f"Final result: val accuracy {printed:.4f}" in md
    from vitpet.publish import sha256_file
    assert sha256_file(run_dir / "best.safetensors") in md
    assert "python3 p1_train.py" in md and "bash hw3_1.sh" in md
    assert '"a person skiing" / "someone on skis"' in md  # ground truth beside the generated caption
    from catr.metrics import caption_metrics, java_available
    generated = json.loads((result["md"].parents[1] / "p2" / "ski.json").read_text())["caption"]
    cider = caption_metrics({"ski": generated}, {"ski": ["a person skiing", "someone on skis"]}, java_available())
    assert "1 generated captions against 2 references" in md and f"| CIDEr-D | {cider['CIDEr-D']:.3f} |" in md
    for fig in result["figures"]:
        assert Image.open(fig).size[0] > 300
    for link in re.findall(r"\]\(([^)]+\.png)\)", md):  # every Markdown link resolves, inside the report folder
        assert (result["md"].parent / link).is_file() and not link.startswith(("..", "/")), link
    assert "| image | true | predicted | probability | correct |" in md  # a miss is flagged, not hidden
    assert "epoch of best (from 1)" in md and "falls with distance\"" not in md
    html = result["html"].read_text()
    assert "src=\"figures" not in html and html.count("data:image/") == md.count("![")  # self-contained


def test_report_renders_in_a_real_browser(built):
    result, _, _ = built
    binary = render.find_chromium()
    if binary is None:
        pytest.skip("no headless Chromium installed (Debian: apt-get install chromium-headless-shell); "
                    ".ci/run installs it")
    page = result["html"].read_text()
    probe = result["html"].with_name("probe.html")
    probe.write_text(page.replace("</body>", "<script>window.addEventListener('load', () => {"
                                  "const im = [...document.images]; document.body.setAttribute('data-decoded', "
                                  "im.filter(i => i.complete && i.naturalWidth > 0).length + '/' + im.length);"
                                  "});</script></body>"))
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(render.chromium_args(binary, profile) + ["--virtual-time-budget=10000", "--dump-dom",
                                                                      probe.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
    decoded, total = map(int, re.search(r'data-decoded="(\d+)/(\d+)"', dom).groups())
    assert total == page.count("<img ") and decoded == total > 5

    from pypdf import PdfReader
    pdf = PdfReader(result["pdf"])
    sections = page.count("<h2>")  # each starts a printed page
    assert len(pdf.pages) >= sections == 5
    text = "".join(p.extract_text() for p in pdf.pages)
    assert "Final result: val accuracy" in text and "Problem 2" in text


def test_markdown_tables_align_and_escape():
    from hw3io import markdown_table
    assert markdown_table(("map", "rate"), [("a|b", 0.5)], "lr") == "| map | rate |\n| --- | ---: |\n| a\\|b | 0.5 |"


def _row(maps, deletion=None, randomisation=None):
    row = {"maps": maps, "tolerance": maps, "mass": 0.5, "count": 10}
    if deletion is not None:
        row.update(deletion=deletion, insertion=0.4, randomisation=randomisation)
    return row


def test_trust_findings_state_only_what_the_numbers_show():
    from explanations.pointing import findings
    base = {"centre": 0.0, "random": 0.1, "centre_tolerance": 0.8, "random_tolerance": 0.3, "uniform_mass": 0.1,
            "random_deletion": 0.28, "random_insertion": 0.39, "count": 10}
    rows = {"attention, layer 3 (last: the homework's map)": _row(0.87, 0.078, -0.06),
            "attention, mean of the layers": _row(0.97, 0.072, -0.17),
            "edges": _row(0.50, 0.20, 0.95)}
    text = " ".join(findings(rows, base, "attention, layer 3 (last: the homework's map)"))
    assert "highest for attention, mean of the layers (0.970)" in text and "centre scores 0.000" in text
    assert "The homework's map (attention, layer 3 (last: the homework's map)) scores 0.870 strict" in text
    assert "lowest for attention, mean of the layers (0.072)" in text and "random order gives 0.280" in text
    assert "0.3 or more): edges" in text and "Every map changes" not in text
    rows.pop("edges")
    assert "Every map changes when the model's weights are randomised" in " ".join(findings(rows, base))
    assert not any("eletion" in line for line in findings({"a": _row(0.5)}, base))  # no column, no claim


def test_report_shows_the_saved_pointing_tables(tmp_path):
    from explanations.pointing import save
    from report.build import section_trust
    base = {"centre": 0.0, "random": 0.1, "centre_tolerance": 0.8, "random_tolerance": 0.3, "uniform_mass": 0.1,
            "count": 10, "classes": 3, "per_class": {"a": 1.0}}
    rows = {"attention, layer 1 (last: the homework's map)": dict(_row(0.8), **base), "rollout": dict(_row(0.9),
                                                                                                       **base)}
    save(tmp_path / "p1.json", rows, base, "images")
    blocks = section_trust({"Problem 1": str(tmp_path / "p1.json"), "Problem 2": None})
    tables = [b for b in blocks if b[0] == "table"]
    assert len(tables) == 1 and [r[0] for r in tables[0][2]] == [*rows, "image centre", "random point"]
    assert any(b[0] == "p" and "highest for rollout (0.900)" in b[1] for b in blocks)


def test_a_rising_profile_is_never_described_as_falling():
    import pandas as pd
    from report.evidence import profile_trend
    rising = pd.DataFrame({"relation": ["same row"] * 4, "distance": [1, 2, 3, 4],
                           "mean_cosine": [0.1, 0.2, 0.35, 0.5], "pairs": [1] * 4})
    assert profile_trend(rising, "same row").startswith("rises with distance, from 0.100 at 1 to 0.500 at 4")
    bumpy = rising.assign(mean_cosine=[0.088, 0.05, 0.032, 0.092])  # the demo's same-column curve, roughly
    text = profile_trend(bumpy, "same row")
    assert text.startswith("is not monotonic") and "falls" not in text and "lowest 0.032 at 3" in text
    falling = rising.assign(mean_cosine=[0.5, 0.3, 0.2, 0.1])
    assert profile_trend(falling, "same row").startswith("falls with distance")
    slow = rising.assign(mean_cosine=[0.100, 0.104, 0.108, 0.112])  # every step below the old 0.005 tolerance
    assert profile_trend(slow, "same row").startswith("rises with distance, from 0.100 at 1 to 0.112 at 4")
    blip = rising.assign(mean_cosine=[0.5, 0.503, 0.3, 0.2])  # rises once, by less than the old tolerance
    text = profile_trend(blip, "same row")
    assert text.startswith("is not monotonic") and "highest 0.503 at 2" in text
    from report.evidence import profile_ends
    assert profile_ends(blip, "same row") == ("same row: similarity 0.500 at distance 1 and 0.200 at the farthest "
                                              "distance, 4 (the curve is not monotonic)")


def test_training_writes_class_names_the_report_reads(trained, tmp_path):
    from report.build import read_class_names
    from synth.pets import CLASS_NAMES
    _, run_dir, _ = trained
    assert (run_dir / "classes.txt").read_text().splitlines() == CLASS_NAMES  # copied from the data folder
    assert read_class_names(None, 37, run_dir)[:2] == ["0 red disc", "1 red square"]
    (tmp_path / "mine.txt").write_text("\n".join(f"pet{i}" for i in range(37)) + "\n")
    assert read_class_names(tmp_path / "mine.txt", 37, run_dir)[36] == "36 pet36"  # the flag wins
    assert read_class_names(None, 37, tmp_path)[5] == "5"  # no file anywhere: numbers

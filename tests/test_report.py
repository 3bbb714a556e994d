"""report/: the measured evidence (checked against brute force), the built report's numbers, and the page in a real
headless Chromium (skipped, with the reason, where none is installed; CI installs one)."""
import json
import re
import subprocess

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, assert_one_line_error, run
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
    from helpers import NO_CHROMIUM, dump_dom
    result, _, _ = built
    page = result["html"].read_text()
    dom = dump_dom(result["html"], "window.addEventListener('load', () => {"
                   "const im = [...document.images]; document.body.setAttribute('data-decoded', "
                   "im.filter(i => i.complete && i.naturalWidth > 0).length + '/' + im.length);});")
    if dom is None:
        pytest.skip(NO_CHROMIUM)
    decoded, total = map(int, re.search(r'data-decoded="(\d+)/(\d+)"', dom).groups())
    assert total == page.count("<img ") and decoded == total > 5

    from pypdf import PdfReader
    pdf = PdfReader(result["pdf"])
    sections = page.count("<h2>")  # each starts a printed page
    assert len(pdf.pages) >= sections == 2  # Problem 1 and Problem 2 (no appendix without pointing results)
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
    from report.build import class_labels
    from synth.pets import CLASS_NAMES
    _, run_dir, _ = trained
    assert (run_dir / "classes.txt").read_text().splitlines() == CLASS_NAMES  # copied from the data folder
    assert class_labels(None, 37, run_dir)[:2] == ["0 red disc", "1 red square"]
    (tmp_path / "mine.txt").write_text("\n".join(f"pet{i}" for i in range(37)) + "\n")
    assert class_labels(tmp_path / "mine.txt", 37, run_dir)[36] == "36 pet36"  # the flag wins
    assert class_labels(None, 37, tmp_path)[5] == "5"  # no file anywhere: numbers


def _sections(blocks, level=3):
    """The blocks under each heading of ``level`` (deeper headings stay inside), keyed by the heading."""
    out, key = {}, None
    for b in blocks:
        if b[0] == "h" and b[1] <= level:
            key = b[2] if b[1] == level else None
            if key:
                out[key] = []
        elif key:
            out[key].append(b)
    return out


NUMBER = re.compile(r"(?<![\w.-])-?\d+(?:\.\d+)?(?!\w)(?!\.\d)")


def test_report_follows_the_homeworks_questions(built):
    from synth.pets import CLASS_NAMES
    from vitpet.data import parse_label
    result, data, _ = built
    heads = [(b[1], b[2]) for b in result["blocks"] if b[0] == "h" and b[1] <= 3]
    assert heads == [(1, "DLCV HW3 report: <your name> (<student ID>)"),
                     (2, "Problem 1: image classification with a Vision Transformer"),
                     (3, "Question 1: accuracy on the validation set"), (3, "Question 2: position embeddings"),
                     (3, "Question 3: attention map of the CLS token in the last layer"),
                     (2, "Problem 2: visualization in image captioning"),
                     (3, "Question 1: cross-attention for each generated token"),
                     (3, "Question 2: one image, token by token (girl)")]  # the first image by default
    sections = _sections(result["blocks"])
    assert all(sum(b[0] == "discuss" for b in body) == 1 for body in sections.values())
    md = result["md"].read_text()
    assert md.count("> **Your discussion:**") == 5
    assert not re.search(r"^#.*(evidence|\b1[ab]\b)", md, re.M)  # the homework's numbering, not ours
    prompts = {k: " / ".join(next(b[1] for b in body if b[0] == "discuss")) for k, body in sections.items()}
    assert "val accuracy" in prompts["Question 1: accuracy on the validation set"]
    assert "same row: similarity" in prompts["Question 2: position embeddings"]
    attention = next(b[1] for b in sections["Question 3: attention map of the CLS token in the last layer"]
                     if b[0] == "discuss")
    attn = sorted((data / "val").glob("*.jpg"))[:3]  # the fixture's --attn-images
    assert len(attention) == 3
    for path, prompt in zip(attn, attention):  # the true class by number and name, from the run's classes.txt
        label = parse_label(path)
        assert prompt.startswith(f"{path.name}: true {label} {CLASS_NAMES[label]}, predicted "), prompt


def test_every_number_in_the_prose_is_in_a_table(built):
    """Each number a sentence or a discussion prompt quotes is printed in a table or a figure caption of the same
    question (the accuracy, the settings, the position embeddings, the attention and the token-by-token one)."""
    result, _, _ = built
    for title, body in _sections(result["blocks"]).items():
        if title.startswith("Question 1: cross-attention"):  # captions and counts only, no measurements
            continue
        shown = set()
        for b in body:
            if b[0] == "table":
                shown |= {n for row in [b[1], *b[2]] for cell in row for n in NUMBER.findall(str(cell))}
            elif b[0] == "img":
                shown |= set(NUMBER.findall(b[2]))
        quoted = [n for b in body if b[0] in ("p", "discuss")
                  for text in ([b[1]] if b[0] == "p" else b[1]) for n in NUMBER.findall(text)]
        assert quoted, title
        missing = sorted({n for n in quoted if n not in shown})
        assert not missing, f"{title}: {missing} quoted but in no table"


def test_report_links_survive_moving_the_folder(built, tmp_path):
    import shutil
    result, _, _ = built
    home = result["md"].parent
    moved = tmp_path / "elsewhere" / "deeper" / "report"
    moved.parent.mkdir(parents=True)
    shutil.move(home, moved)
    try:
        md, page = (moved / "report.md").read_text(), (moved / "report.html").read_text()
        links = re.findall(r"\]\(([^)]+)\)", md) + re.findall(r'(?:src|href)="([^"]+)"', page)
        local = [l for l in links if not l.startswith(("data:", "http://", "https://", "#"))]
        assert len(local) >= md.count("![") > 5
        for link in local:
            assert (moved / link).is_file(), link
    finally:
        shutil.move(moved, home)


def test_p2_question_2_discusses_the_chosen_image(built, tmp_path):
    from hw3io import UserError
    from report.build import section_p2_one
    result, _, _ = built
    pngs = sorted((result["md"].parents[1] / "p2").glob("*.png"))
    blocks = section_p2_one(pngs, "ski.jpg", tmp_path)
    assert blocks[0] == ("h", 3, "Question 2: one image, token by token (ski)")
    assert any(b[0] == "discuss" and any("times uniform" in p for p in b[1]) for b in blocks)
    with pytest.raises(UserError, match="not among the captioned images: girl, ski"):
        section_p2_one(pngs, "cat", tmp_path)


def _captured(monkeypatch):
    from report import figures
    figs = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path, **kw: figs.append(fig))
    return figures, figs


def test_every_map_has_a_colour_bar(monkeypatch, tmp_path):
    figures, figs = _captured(monkeypatch)
    rng = np.random.default_rng(0)
    row = {"name": "a.jpg", "original": rng.random((20, 24, 3)), "view": rng.random((16, 16, 3)),
           "heat": rng.random((16, 16)), "pred": "1 x", "prob": 0.5, "true": "2 y", "hit": False}
    figures.plot_attention_rows([row, row], tmp_path / "a.png")
    figures.plot_token_maps(rng.random((16, 16, 3)), rng.random((3, 16, 16)), ["a", "dog", "[SEP]"], "A dog",
                            tmp_path / "b.png")
    maps = [im for fig in figs for ax in fig.axes for im in ax.images if im.get_array().ndim == 2]
    assert len(maps) == 2 * 2 + 3 and all(im.colorbar is not None for im in maps)


def _fake_run(folder, opt, accs, **train):
    """A p1_train.py output folder without training: a random tiny ViT saved as best, a log, run.json; ``train``
    adds to the recorded train_config."""
    import pandas as pd
    import torch
    from vitpet.model import build_model, resolve_model_data_config, save_checkpoint
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    model = build_model("vit_demo_patch8", num_classes=3, pretrained=False)
    train_config = {"opt": opt, "lr": 2e-3, "epochs": len(accs), "batch_size": 32, "pretrained": False, **train}
    config = {"model": "vit_demo_patch8", "num_classes": 3, "img_size": 64,
              "data_config": resolve_model_data_config(model), "val_acc": max(accs), "epoch": int(np.argmax(accs)),
              "train_config": train_config}
    save_checkpoint(folder / "best.safetensors", model, config)
    pd.DataFrame({"epoch": range(len(accs)), "train_loss": 1.0, "val_loss": 1.0, "val_acc": accs,
                  "lr": 1e-3}).to_csv(folder / "log.csv", index=False)
    (folder / "run.json").write_text(json.dumps({"train_seconds": 42}))
    return folder


def test_settings_table_compares_runs_epoch_by_epoch_from_1(monkeypatch, tmp_path):
    from report import evidence
    from report.build import section_settings
    figures, figs = _captured(monkeypatch)
    runs = [evidence.load_run(_fake_run(tmp_path / "adamw", "adamw", [0.2, 0.6, 0.5])),
            evidence.load_run(_fake_run(tmp_path / "sgd", "sgd", [0.1, 0.3, 0.4]))]
    targets, preds = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 1])
    blocks = section_settings(runs, targets, preds, ["0 a", "1 b", "2 c"], tmp_path)
    _, head, rows = blocks[1]
    col = {h: [r[head.index(h)] for r in rows] for h in head}
    assert col["run"] == col["optimizer"] == ["adamw", "sgd"] and col["wall time"] == ["42 s"] * 2
    assert col["best val acc"] == ["0.6000", "0.4000"] and col["epoch of best (from 1)"] == [2, 3]
    prompts = next(b[1] for b in blocks if b[0] == "discuss")
    assert "the runs differ in optimizer: adamw (adamw), sgd (sgd)" in prompts
    assert "best val accuracy: 0.6000 (adamw, epoch 2), 0.4000 (sgd, epoch 3)" in prompts
    assert "the most confused pair is 0 a taken for 1 b (1 images)" in prompts
    curves = [line.get_xdata() for line in figs[0].axes[0].lines]
    assert [list(x) for x in curves] == [[1, 2, 3], [1, 2, 3]]  # log.csv's epoch 0 is the first


def test_make_compare_trains_two_runs_differing_in_one_setting():
    proc = subprocess.run(["make", "-n", "-o", ".venv/.installed", "compare"], capture_output=True, text=True,
                          cwd=ROOT)
    lines = re.sub(r"\\\n\s*", " ", proc.stdout).splitlines()  # continuation lines joined
    trains = [l for l in lines if "p1_train.py" in l]
    assert len(trains) == 2, proc.stdout + proc.stderr
    strip = [re.sub(r"--opt \w+ --output-dir demo_out/compare/\w+", "", l) for l in trains]
    assert strip[0] == strip[1] and "--opt adamw" in trains[0] and "--opt sgd" in trains[1]
    assert any("hw3_report.py" in l and "--compare demo_out/compare/adamw demo_out/compare/sgd" in l for l in lines)


def test_the_report_reads_class_names_as_training_does(tmp_path):
    """One reader of classes.txt (vitpet.data.read_class_names): the same errors, one line each, in both places."""
    from hw3io import UserError
    from report.build import class_labels
    from vitpet.data import find_class_names
    (tmp_path / "classes.txt").write_text("cat\n\ndog\n")
    assert class_labels(tmp_path / "classes.txt", 2) == ["0 cat", "1 dog"]
    for read in (lambda: class_labels(tmp_path / "classes.txt", 3), lambda: find_class_names(tmp_path / "train", 3)):
        with pytest.raises(UserError, match=r"classes.txt has 2 class names for 3 classes$"):
            read()
    with pytest.raises(UserError, match="cannot read class names .*nothing.txt"):
        class_labels(tmp_path / "nothing.txt", 2)  # was a FileNotFoundError traceback


def _pngs(folder, n):
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(folder / f"img_{i:02d}.png")
    return folder


@pytest.mark.parametrize("flags, said", [({"p2_limit": 0}, "--p2-limit must be 1 or more, not 0"),
                                         ({"p2_limit": -1}, "--p2-limit must be 1 or more, not -1"),
                                         ({"p2_image": "cat"}, "--p2-image cat is not among the captioned images")])
def test_problem_2_flags_are_checked_before_problem_1(monkeypatch, tmp_path, flags, said):
    from hw3io import UserError
    from report import build
    monkeypatch.setattr(build.evidence, "load_run", lambda d: pytest.fail("Problem 1 began before the P2 flags"))
    with pytest.raises(UserError, match=re.escape(said)):
        build.build_report(tmp_path / "run", tmp_path / "out", val_dir=tmp_path, p2_dir=_pngs(tmp_path / "p2", 2),
                           **flags)


def test_a_bad_p2_limit_is_one_error_line(tmp_path):
    proc = run(["python3", "hw3_report.py", "--p1-run", str(tmp_path / "run"), "--val-dir", str(tmp_path),
                "--p2-dir", str(_pngs(tmp_path / "p2", 1)), "--p2-limit", "0", "--output", str(tmp_path / "out")])
    assert_one_line_error(proc, "--p2-limit must be 1 or more, not 0")


def test_a_big_p2_folder_shows_ten_images_and_says_so(tmp_path):
    from hw3_report import get_args_parser
    from report.build import P2_LIMIT, section_p2
    assert get_args_parser().get_default("p2_limit") == P2_LIMIT == 10
    blocks = section_p2(_pngs(tmp_path / "p2", 12), {}, tmp_path / "figs")
    question_1 = _sections(blocks)["Question 1: cross-attention for each generated token"]
    assert sum(b[0] == "img" for b in question_1) == 10
    assert ("p", f"Shown: the first 10 of the 12 captioned images in {tmp_path / 'p2'}; --p2-limit N shows N of "
                 "them.") in question_1


def test_a_malformed_caption_json_is_one_error_line(tmp_path):
    from hw3io import UserError
    from report.build import section_p2_one
    p2 = _pngs(tmp_path / "p2", 1)
    np.save(p2 / "img_00.npy", np.ones((2, 3, 3)) / 9)
    (p2 / "img_00.json").write_text('{"caption": "a dog"')  # cut short
    with pytest.raises(UserError, match=r"caption metadata .*img_00.json is not JSON"):
        section_p2_one(sorted(p2.glob("*.png")), None, tmp_path / "figs")


def test_runs_differing_only_in_weight_decay_are_not_called_the_same(monkeypatch, tmp_path):
    """Every recorded training setting is compared, not only the table's columns; paths and worker counts are not."""
    from report.build import section_settings
    _captured(monkeypatch)
    runs = [evidence.load_run(_fake_run(tmp_path / name, "adamw", [0.2, 0.5], weight_decay=wd, momentum=0.9,
                                        output_dir=str(tmp_path / name), workers=workers))
            for name, wd, workers in (("wd05", 0.05, 0), ("wd0", 0.0, 4))]
    blocks = section_settings(runs, np.array([0, 1, 2]), np.array([0, 1, 1]), ["0 a", "1 b", "2 c"], tmp_path)
    prompts = next(b[1] for b in blocks if b[0] == "discuss")
    assert "the runs differ in weight_decay: 0.05 (wd05), 0 (wd0)" in prompts
    assert not any("same" in p or "output_dir" in p or "workers" in p for p in prompts), prompts
    assert ("table", ["setting", "wd05", "wd0"], [["weight_decay", "0.05", "0"]]) in blocks  # the quoted values
    same = [evidence.load_run(_fake_run(tmp_path / f"s{i}", "sgd", [0.1], weight_decay=0.0)) for i in range(2)]
    prompts = next(b[1] for b in section_settings(same, np.array([0]), np.array([0]), ["0 a"], tmp_path)
                   if b[0] == "discuss")
    assert "the runs' recorded settings are all the same (the data folders may differ)" in prompts

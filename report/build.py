"""``build_report``: gather every figure and number the homework report asks for, in the homework's order."""
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from hw3io import UserError, list_images, load_rgb, upsample
from . import evidence, figures, render

SPEC_IMAGES = ("26_5064.jpg", "29_4718.jpg", "31_4838.jpg")


def read_class_names(path, num_classes: int, run_dir=None) -> list[str]:
    """``--class-names`` when given, else the run folder's ``classes.txt`` (training copies the data folder's), else
    the label numbers; each name is prefixed with its number, as the file names carry it."""
    from vitpet.data import CLASS_FILE
    if path is None and run_dir is not None and (Path(run_dir) / CLASS_FILE).is_file():
        path = Path(run_dir) / CLASS_FILE
    if path is None:
        return [str(i) for i in range(num_classes)]
    names = [l.strip() for l in Path(path).read_text().splitlines() if l.strip()]
    if len(names) != num_classes:
        raise UserError(f"{path} has {len(names)} class names, the model {num_classes} classes")
    return [f"{i} {n}" for i, n in enumerate(names)]


def read_captions(path) -> dict[str, list[str]]:
    """Lines ``<file name> <caption>`` (several per image allowed) or a COCO captions ``.json``
    (``catr.metrics.read_references``); keyed by the name's stem, as the PNGs are."""
    if path is None:
        return {}
    from catr.metrics import references_by_name
    return {Path(name).stem: caps for name, caps in references_by_name(path).items()}


def caption_scores(p2_dir, refs) -> list:
    """The COCO caption evaluation of every captioned image that has references, as blocks."""
    from catr.metrics import NO_JAVA, caption_metrics, java_available
    results = {}
    for meta in sorted(Path(p2_dir).glob("*.json")):
        if meta.stem in refs:
            results[meta.stem] = json.loads(meta.read_text()).get("caption", "")
    if not results:
        return []
    java = java_available()
    scores = caption_metrics(results, refs, java)
    n_refs = sum(len(refs[k]) for k in results)
    note = (f"{len(results)} generated captions against {n_refs} references ({n_refs / len(results):.0f} per image), "
            "scored as the COCO caption evaluation does (pycocoevalcap; CIDEr is CIDEr-D; papers print x100).")
    return [("h", 3, "Caption metrics"), ("p", note if java else f"{note} {NO_JAVA}."),
            ("table", ["metric", "score"], [[k, f"{v:.3f}"] for k, v in scores.items()])]


def section_1a(run, val_dir, device, figs):
    """Predict --val-dir with the chosen checkpoint: the number the graders reproduce."""
    from vitpet.config import format_versions, reproduce_commands
    from vitpet.data import parse_label
    from vitpet.inference import predict_folder
    from vitpet.model import load_checkpoint
    from vitpet.publish import sha256_file
    model, config = load_checkpoint(run["checkpoint"], device=device)
    t0 = time.time()
    df, bad, _ = predict_folder(model, config["data_config"], val_dir, device=device, show_progress=False)
    if bad:
        raise UserError(f"{len(bad)} unreadable image(s) in {val_dir}: {', '.join(p.name for p, _ in bad)}")
    targets = np.array([parse_label(n) for n in df["filename"]])
    preds = df["label"].to_numpy()
    acc = float((preds == targets).mean())
    train_cmd, predict_cmd = reproduce_commands(config.get("train_config") or {}, val_dir)
    box = [f"Final result: val accuracy {acc:.4f} ({(preds == targets).sum()} / {len(df)} images of {val_dir})",
           f"model {config['model']}, {config['img_size']} px, checkpoint sha256 {sha256_file(run['checkpoint'])}",
           f"trained on {config.get('train_device', run['info'].get('device', 'n/a'))}; "
           f"{format_versions(config.get('versions'))}",
           f"reproduce training: {train_cmd}",
           f"reproduce prediction: {predict_cmd}"]
    blocks = [("h", 2, "Problem 1a: final result"), ("box", box),
              ("p", f"Recomputed by predicting every image of the val folder with the checkpoint "
                    f"({time.time() - t0:.0f} s on {device}); the training log's best was "
                    f"{config.get('val_acc', float('nan')):.4f}.")]
    return blocks, model, config, targets, preds, acc


def section_1b(runs, targets, preds, class_names, figs):
    rows = [evidence.run_row(r) for r in runs]
    headers = list(rows[0])
    figures.plot_runs(runs, figs / "runs.png")
    acc = evidence.per_class_accuracy(targets, preds, len(class_names))
    figures.plot_per_class(acc, class_names, figs / "per_class.png")
    confused = evidence.most_confused(targets, preds)
    worst = np.argsort(np.nan_to_num(acc, nan=2))[:3]
    blocks = [("h", 2, "Problem 1b: results under different settings"),
              ("table", headers, [[r[h] for h in headers] for r in rows]),
              ("img", figs / "runs.png", "Val accuracy and loss per epoch, every run."),
              ("img", figs / "per_class.png", f"Per-class val accuracy of the chosen run ({runs[0]['name']})."),
              ("p", "Hardest classes: " + ", ".join(f"{class_names[c]} ({acc[c]:.2f})" for c in worst) + "."),
              ("h", 3, "Most confused pairs"),
              ("table", ["true class", "predicted as", "images"],
               [[class_names[t], class_names[p], n] for t, p, n in confused] or [["none", "", 0]])]
    return blocks


def section_2(model, figs):
    from vitpet.attention import patch_grid, pos_embed_cosine
    from vitpet.plotting import plot_pos_similarity
    sim = pos_embed_cosine(model).cpu().numpy()
    grid = patch_grid(model)
    plot_pos_similarity(sim, grid, figs / "pos.png",
                        title=f"cosine similarity of position embeddings ({grid[0]}x{grid[1]} patches)")
    profile = evidence.pos_distance_profile(sim, grid)
    figures.plot_pos_profile(profile, figs / "pos_profile.png")
    table = profile.pivot(index="distance", columns="relation", values="mean_cosine")
    table = table.reindex(columns=["same row", "same column", "elsewhere"])
    rows = [[int(d)] + [("" if np.isnan(v) else f"{v:.3f}") for v in r] for d, r in zip(table.index, table.values)]
    text = (f"Measured over all {len(sim) * (len(sim) - 1)} ordered pairs of the {len(sim)} patch embeddings (the "
            "table below holds every number quoted): the mean cosine of patches in the same row "
            f"{evidence.profile_trend(profile, 'same row')}; in the same column "
            f"{evidence.profile_trend(profile, 'same column')}; elsewhere "
            f"{evidence.profile_trend(profile, 'elsewhere')}.")
    return [("h", 2, "Problem 1, question 2: position embeddings"),
            ("img", figs / "pos.png", "Map (r, c) is patch (r, c)'s cosine similarity to every patch."),
            ("p", text), ("img", figs / "pos_profile.png", "Mean cosine similarity against patch distance."),
            ("table", ["distance", "same row", "same column", "elsewhere"], rows)]


def section_3(model, config, images, class_names, device, figs):
    from vitpet.attention import attention_maps
    from vitpet.data import has_labels, parse_label
    from vitpet.explain import view_and_input
    rows = []
    for path in images:
        original = load_rgb(path)
        view, x = view_and_input(original, config["data_config"])
        x = x[None].to(device)
        with torch.no_grad():
            prob = model(x).softmax(-1)[0].cpu()
        heat = attention_maps(model, x)[0].cpu()
        label = parse_label(path) if has_labels([path]) else None
        rows.append({"name": Path(path).name, "original": original, "view": view.permute(1, 2, 0).numpy(),
                     "heat": upsample(heat, tuple(view.shape[-2:])).numpy(),
                     "pred": class_names[int(prob.argmax())], "prob": float(prob.max()),
                     "true": None if label is None else class_names[label],
                     "hit": None if label is None else int(prob.argmax()) == label})
    figures.plot_attention_rows(rows, figs / "attention.png")
    return [("h", 2, "Problem 1, question 3: last-layer CLS attention"),
            ("img", figs / "attention.png", "Original | last-layer CLS attention averaged over heads | overlay on "
                                            "the image as the model saw it, with the predicted and the true class."),
            ("table", ["image", "true", "predicted", "probability", "correct"],
             [[r["name"], r["true"] or "(no label)", r["pred"], f"{r['prob']:.3f}",
               "-" if r["hit"] is None else ("yes" if r["hit"] else "NO")] for r in rows])]


P2_SHOWN = 8


def section_p2(p2_dir, refs, figs):
    from catr.visualize import plot_caption_attention
    pngs = sorted(Path(p2_dir).glob("*.png"))
    if not pngs:
        raise UserError(f"no caption PNGs in {p2_dir}: run hw3_2.sh first")
    blocks = [("h", 2, "Problem 2: cross-attention per generated word")]
    if len(pngs) > P2_SHOWN:  # the homework's few test images fit; a large folder would bury the report
        blocks.append(("p", f"The first {P2_SHOWN} of the {len(pngs)} captioned images in {p2_dir}."))
        pngs = pngs[:P2_SHOWN]
    figs.mkdir(parents=True, exist_ok=True)
    for png in pngs:
        caption = png.with_suffix(".txt").read_text().strip() if png.with_suffix(".txt").is_file() else "?"
        line = f"{png.stem}: generated \"{caption}\""
        if refs:
            line += "; ground truth: " + (" / ".join(f"\"{c}\"" for c in refs.get(png.stem, [])) or "(none given)")
        copy = figs / f"p2_{png.name}"  # inside the report folder, so its links survive moving it
        shutil.copyfile(png, copy)
        blocks += [("img", copy, line)]
    if refs:
        blocks += caption_scores(p2_dir, refs)
    first = pngs[0]
    meta_path, npy = first.with_suffix(".json"), first.with_suffix(".npy")
    if meta_path.is_file() and npy.is_file():
        meta = json.loads(meta_path.read_text())
        maps = np.load(npy)
        maps = maps.mean(1) if maps.ndim == 4 else maps
        peaks = evidence.token_peaks(maps)
        blocks.append(("h", 3, f"Word by word: {first.stem}"))
        if meta.get("image") and Path(meta["image"]).is_file():
            from catr.preprocess import resize
            small = resize(load_rgb(meta["image"]), max(meta["size"]))  # as hw3_2.sh resized it
            heat = upsample(torch.from_numpy(maps), (small.height, small.width)).numpy()
            plot_caption_attention(np.asarray(small), heat, meta["tokens"], meta["caption"].capitalize(),
                                   figs / f"words_{first.stem}.png", cols=3, dpi=110)
            blocks.append(("img", figs / f"words_{first.stem}.png", "The same tiles, larger: three a row."))
        blocks.append(("table", ["#", "word piece", "peak cell (row, col)", "where in the image", "peak weight"],
                       [[i + 1, tok, f"({p['row']}, {p['col']}) of {maps.shape[1]}x{maps.shape[2]}", p["where"],
                         f"{p['peak']:.3f}"] for i, (tok, p) in enumerate(zip(meta["tokens"], peaks))]))
    return blocks


def section_trust(pointing: dict) -> list:
    """The pointing game and the faithfulness checks of every map, per problem, from the pointing tools' --json,
    with only the statements the numbers support (``explanations.pointing.findings``)."""
    from explanations.pointing import FAITHFULNESS, findings
    from hw3io import read_json
    given = {problem: path for problem, path in pointing.items() if path}
    if not given:
        return []
    blocks = [("h", 2, "Can the maps be trusted?"),
              ("p", "Each map is scored for pointing (does its peak land on the object; strict, TorchRay's 15 px "
                    "tolerance on the original image, mass in the object) and, where computed, for faithfulness "
                    "(deletion and insertion areas of the explained decision, Petsiuk et al. 2018) and sanity (rank "
                    "correlation with the maps of a randomly re-initialised model, Adebayo et al. 2018).")]
    for problem, path in given.items():
        saved = read_json(path, f"{problem} pointing results")
        rows, base = saved["rows"], saved["baseline"]
        extra = all("deletion" in r for r in rows.values())
        head = ["map", "strict", "tolerance", "mass in object", *(["deletion", "insertion", "randomisation"]
                                                                  if extra else []), saved.get("unit", "count")]
        f = "{:.3f}".format
        body = [[n, f(r["maps"]), f(r["tolerance"]), f(r["mass"]), *([f(r[k]) for k in FAITHFULNESS] if extra
                                                                       else []), r["count"]] for n, r in rows.items()]
        body += [["image centre", f(base["centre"]), f(base["centre_tolerance"]), "-", *(["-"] * 3 if extra else []),
                  base["count"]],
                 ["random point", f(base["random"]), f(base["random_tolerance"]), f(base["uniform_mass"]),
                  *([f(base["random_deletion"]), f(base["random_insertion"]), "-"] if extra else []), base["count"]]]
        homework = next((n for n in rows if "homework" in n or "hw3_2.sh" in n), None)
        blocks += [("h", 3, problem), ("table", head, body),
                   *[("p", line) for line in findings(rows, base, homework)]]
    return blocks


def build_report(p1_run, output, *, val_dir, compare=(), attn_images=None, p2_dir=None, p2_captions=None,
                 class_names=None, device="cpu", pdf=True, pointing=None) -> dict:
    """Write report.md, report.html, figures/*.png and (with Chromium) report.pdf into ``output``."""
    output = Path(output)
    runs = [evidence.load_run(p1_run)] + [evidence.load_run(d) for d in compare]
    val_dir = Path(val_dir)
    list_images(val_dir)  # one clear error for a missing or empty folder, before any work
    if attn_images is None:
        attn_images = [val_dir / n for n in SPEC_IMAGES]
    missing = [str(p) for p in attn_images if not Path(p).is_file()]
    if missing:
        raise UserError(f"attention image(s) not found: {', '.join(missing)} (pass --attn-images)")
    from hw3io import read_json
    for problem, path in (pointing or {}).items():  # a bad results file is said before the long part
        if path:
            read_json(path, f"{problem} pointing results")
    figs = output / "figures"
    t0 = time.time()
    blocks, model, config, targets, preds, acc = section_1a(runs[0], val_dir, device, figs)
    names = read_class_names(class_names, config["num_classes"], runs[0]["dir"])
    blocks += section_1b(runs, targets, preds, names, figs)
    blocks += section_2(model, figs)
    blocks += section_3(model, config, attn_images, names, device, figs)
    if p2_dir is not None:
        blocks += section_p2(p2_dir, read_captions(p2_captions), figs)
    blocks += section_trust(pointing or {})
    blocks = [("h", 1, "DLCV HW3 report: evidence")] + blocks
    paths = render.write_all(blocks, output, "DLCV HW3 report", pdf=pdf)
    return {**paths, "accuracy": acc, "seconds": time.time() - t0, "figures": sorted(figs.glob("*.png"))}

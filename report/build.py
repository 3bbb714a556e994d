"""``build_report``: gather every figure and number the homework report asks for, in the homework's order."""
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from hw3io import UserError, list_images, load_rgb, read_json, upsample
from . import evidence, figures, render

SPEC_IMAGES = ("26_5064.jpg", "29_4718.jpg", "31_4838.jpg")
P2_LIMIT = 10  # Problem 2 question 1 draws a figure per image: a whole COCO folder would be thousands of them


def class_labels(path, num_classes: int, run_dir=None) -> list[str]:
    """``--class-names`` when given, else the run folder's ``classes.txt`` (training copies the data folder's), else
    the label numbers; each name is prefixed with its number, as the file names carry it."""
    from vitpet.data import CLASS_FILE, read_class_names
    if path is None and run_dir is not None and (Path(run_dir) / CLASS_FILE).is_file():
        path = Path(run_dir) / CLASS_FILE
    if path is None:
        return [str(i) for i in range(num_classes)]
    return [f"{i} {n}" for i, n in enumerate(read_class_names(path, num_classes))]


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
            results[meta.stem] = read_json(meta, "caption metadata").get("caption", "")
    if not results:
        return []
    java = java_available()
    scores = caption_metrics(results, refs, java)
    n_refs = sum(len(refs[k]) for k in results)
    note = (f"{len(results)} generated captions against {n_refs} references ({n_refs / len(results):.0f} per image), "
            "scored as the COCO caption evaluation does (pycocoevalcap; CIDEr is CIDEr-D; papers print x100).")
    return [("h", 4, "Caption metrics"), ("p", note if java else f"{note} {NO_JAVA}."),
            ("table", ["metric", "score"], [[k, f"{v:.3f}"] for k, v in scores.items()])]


def discussion(prompts) -> tuple:
    """The place for the student's own words, with the facts measured above as prompts."""
    return ("discuss", [p for p in prompts if p])


def section_accuracy(run, val_dir, device, figs):
    """Problem 1, question 1: predict --val-dir with the chosen checkpoint, the number the graders reproduce."""
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
    seconds = time.time() - t0
    targets = np.array([parse_label(n) for n in df["filename"]])
    preds = df["label"].to_numpy()
    acc, correct = float((preds == targets).mean()), int((preds == targets).sum())
    train_cmd, predict_cmd = reproduce_commands(config.get("train_config") or {}, val_dir)
    box = [f"Final result: val accuracy {acc:.4f} ({correct} / {len(df)} images of {val_dir})",
           f"model {config['model']}, {config['img_size']} px, checkpoint sha256 {sha256_file(run['checkpoint'])}",
           f"trained on {config.get('train_device', run['info'].get('device', 'n/a'))}; "
           f"{format_versions(config.get('versions'))}",
           f"reproduce training: {train_cmd}",
           f"reproduce prediction: {predict_cmd}"]
    logged = config.get("val_acc")
    epoch = config.get("epoch")
    rows = [["val accuracy (recomputed now)", f"{acc:.4f}"], ["images right / images", f"{correct} / {len(df)}"],
            ["val accuracy the training log kept (best checkpoint)", "n/a" if logged is None else f"{logged:.4f}"],
            ["epoch of that checkpoint (from 1)", "n/a" if epoch is None else epoch + 1],
            ["prediction time", f"{seconds:.0f} s on {device}"]]
    blocks = [("h", 3, "Question 1: accuracy on the validation set"), ("box", box),
              ("p", "Recomputed by predicting every image of the val folder with the chosen checkpoint; the table "
                    "holds every number of this question."),
              ("table", ["quantity", "value"], rows)]
    return blocks, model, config, targets, preds, acc


def setting_differences(rows: list[dict], runs: list[dict]) -> list[str]:
    """The settings in which the runs differ, each as 'name: value (run), value (run)': the table's columns, then
    every other recorded training setting by its config key."""
    keys = [k for k in ("model", "pretrained", "img size", "optimizer", "lr", "batch", "epochs", "augmentation")
            if len({str(r[k]) for r in rows}) > 1]
    return ([f"{k}: " + ", ".join(f"{r[k]} ({r['run']})" for r in rows) for k in keys]
            + [f"{k}: " + ", ".join(f"{v} ({r['run']})" for v, r in zip(values, rows))
               for k, values in evidence.other_differences(runs)])


def section_settings(runs, targets, preds, class_names, figs):
    """Problem 1, question 1's discussion: the chosen run beside the --compare runs, and where the chosen one errs."""
    rows = [evidence.run_row(r) for r in runs]
    headers = list(rows[0])
    figures.plot_runs(runs, figs / "runs.png")
    acc = evidence.per_class_accuracy(targets, preds, len(class_names))
    figures.plot_per_class(acc, class_names, figs / "per_class.png")
    confused = evidence.most_confused(targets, preds)
    counts = np.bincount(targets, minlength=len(class_names))
    seen = np.flatnonzero(~np.isnan(acc))
    lowest = seen[np.argsort(acc[seen], kind="stable")][:3]
    blocks = [("h", 4, "Different settings compared"),
              ("table", headers, [[r[h] for h in headers] for r in rows]),
              ("img", figs / "runs.png", "Val accuracy and loss per epoch (epochs counted from 1), every run."),
              ("img", figs / "per_class.png", f"Per-class val accuracy of the chosen run ({runs[0]['name']})."),
              ("h", 4, "Lowest per-class accuracy"),
              ("table", ["class", "val accuracy", "images"],
               [[class_names[c], f"{acc[c]:.2f}", int(counts[c])] for c in lowest]),
              ("h", 4, "Most confused pairs"),
              ("table", ["true class", "predicted as", "images"],
               [[class_names[t], class_names[p], n] for t, p, n in confused] or [["none", "", 0]])]
    prompts = [f"val accuracy {float((preds == targets).mean()):.4f} ({int((preds == targets).sum())} of "
               f"{len(targets)} images)",
               (f"the most confused pair is {class_names[confused[0][0]]} taken for {class_names[confused[0][1]]} "
                f"({confused[0][2]} images)") if confused else "no val image is misclassified",
               "lowest per-class accuracy: " + ", ".join(f"{class_names[c]} ({acc[c]:.2f})" for c in lowest)]
    others = evidence.other_differences(runs)
    if others:  # beside the table, so every value the prompt quotes is printed
        blocks[2:2] = [("h", 4, "Other recorded settings that differ"),
                       ("table", ["setting", *(r["run"] for r in rows)], [[k, *v] for k, v in others])]
    if len(rows) > 1:
        diff = setting_differences(rows, runs)
        prompts += [("the runs differ in " + "; ".join(diff)) if diff else
                    "the runs' recorded settings are all the same (the data folders may differ)",
                    "best val accuracy: " + ", ".join(f"{r['best val acc']} ({r['run']}, epoch "
                                                      f"{r['epoch of best (from 1)']})" for r in rows)]
    else:
        prompts.append("only one run is shown: add others with --compare RUN... (see `make compare`) to discuss "
                       "settings")
    return blocks + [discussion(prompts)]


def section_pos(model, figs):
    """Problem 1, question 2: the cosine similarity of the patch position embeddings, and its profile."""
    from vitpet.attention import patch_grid, pos_embed_cosine
    from vitpet.plotting import plot_pos_similarity
    sim = pos_embed_cosine(model).cpu().numpy()
    grid = patch_grid(model)
    plot_pos_similarity(sim, grid, figs / "pos.png",
                        title=f"cosine similarity of position embeddings ({grid[0]}x{grid[1]} patches)")
    profile = evidence.pos_distance_profile(sim, grid)
    figures.plot_pos_profile(profile, figs / "pos_profile.png")
    table = profile.pivot(index="distance", columns="relation", values="mean_cosine")
    table = table.reindex(columns=list(evidence.RELATIONS))
    rows = [[int(d)] + [("" if np.isnan(v) else f"{v:.3f}") for v in r] for d, r in zip(table.index, table.values)]
    trends = {rel: evidence.profile_trend(profile, rel) for rel in evidence.RELATIONS}
    text = ("Every ordered pair of distinct patches is averaged by how the two patches lie (same row, same column "
            "or elsewhere) and by their distance in patches, rounded; the table holds every number quoted. The mean "
            f"cosine of patches in the same row {trends['same row']}; in the same column {trends['same column']}; "
            f"elsewhere {trends['elsewhere']}.")
    prompts = [evidence.profile_ends(profile, rel) for rel in evidence.RELATIONS]
    return [("h", 3, "Question 2: position embeddings"),
            ("img", figs / "pos.png", "Tile (r, c) is patch (r, c)'s cosine similarity to every patch."),
            ("p", text), ("img", figs / "pos_profile.png", "Mean cosine similarity against patch distance."),
            ("table", ["distance", *evidence.RELATIONS], rows), discussion(prompts)]


def section_attention(model, config, images, class_names, device, figs, trust=False):
    """Problem 1, question 3: the last layer's CLS attention over the given images."""
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
        peak = evidence.token_peaks(heat[None].numpy())[0]
        label = parse_label(path) if has_labels([path]) else None
        rows.append({"name": Path(path).name, "original": original, "view": view.permute(1, 2, 0).numpy(),
                     "heat": upsample(heat, tuple(view.shape[-2:])).numpy(), "where": peak["where"],
                     "pred": class_names[int(prob.argmax())], "prob": float(prob.max()),
                     "true": None if label is None else class_names[label],
                     "hit": None if label is None else int(prob.argmax()) == label})
    figures.plot_attention_rows(rows, figs / "attention.png")
    prompts = [f"{r['name']}: true {r['true'] or '(no label)'}, predicted {r['pred']} (probability {r['prob']:.3f}); "
               f"the attention peaks at the {r['where']} of the crop" for r in rows]
    if trust:
        prompts.append("whether these maps point at the object at all: see the appendix, Can the maps be trusted?")
    return [("h", 3, "Question 3: attention map of the CLS token in the last layer"),
            ("img", figs / "attention.png", "Original | last-layer CLS attention averaged over heads | overlay on "
                                            "the image as the model saw it, with the predicted and the true class."),
            ("table", ["image", "true", "predicted", "probability", "correct", "attention peak"],
             [[r["name"], r["true"] or "(no label)", r["pred"], f"{r['prob']:.3f}",
               "-" if r["hit"] is None else ("yes" if r["hit"] else "NO"), r["where"]] for r in rows]),
            discussion(prompts)]


def _token_figure(meta, maps, png, out, cols):
    """The tiles of one caption redrawn with a colour bar each, when the source image is still there; else the PNG
    hw3_2.sh drew, copied (inside the report folder either way, so links survive moving it)."""
    if meta.get("image") and Path(meta["image"]).is_file():
        from catr.preprocess import resize
        small = resize(load_rgb(meta["image"]), max(meta["size"]))  # as hw3_2.sh resized it
        heat = upsample(torch.from_numpy(maps), (small.height, small.width)).numpy()
        figures.plot_token_maps(np.asarray(small), heat, meta["tokens"], meta["caption"].capitalize(), out, cols)
        return out, ""
    out = out.with_name(f"p2_{png.name}")
    shutil.copyfile(png, out)
    return out, " (tiles as hw3_2.sh drew them: the source image was not found to redraw them with colour bars)"


def _read_caption(png):
    meta_path, npy = png.with_suffix(".json"), png.with_suffix(".npy")
    if not (meta_path.is_file() and npy.is_file()):
        return None, None
    try:
        maps = np.load(npy)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the attention maps {npy}: {e}") from None
    return read_json(meta_path, "caption metadata"), (maps.mean(1) if maps.ndim == 4 else maps)


def p2_explorer(pngs, path: Path) -> Path | None:
    """The explorer of the captioned images, rebuilt from their current outputs into ``path`` (inside the report, so
    the link survives moving it; a page left in the folder by an earlier run may be stale) when every image's JSON
    says its maps were saved with --all-layers ($CATR_HTML=1); else None, and no stale copy is left at ``path``."""
    from hw3io.explorer import describes_maps, write_explorer

    def saved_for_it(meta_path: Path) -> bool:
        try:
            meta = read_json(meta_path, "caption metadata")
        except UserError:  # missing or not JSON: the section says what it can without an explorer
            return False
        return (describes_maps(meta, meta_path) and "layers_axes" in meta
                and meta_path.with_suffix(".layers.npy").is_file())
    full = all(saved_for_it(png.with_suffix(".json")) for png in pngs)
    if not full:
        path.unlink(missing_ok=True)
        return None
    return write_explorer(pngs[0].parent, stems=[png.stem for png in pngs], path=path)


def p2_images(p2_dir, limit=P2_LIMIT) -> list[Path]:
    """The captioned PNGs of a hw3_2.sh folder; a wrong folder or ``--p2-limit`` is one error line."""
    if limit is not None and limit < 1:
        raise UserError(f"--p2-limit must be 1 or more, not {limit}")
    pngs = sorted(Path(p2_dir).glob("*.png"))
    if not pngs:
        raise UserError(f"no caption PNGs in {p2_dir}: run hw3_2.sh first")
    return pngs


def pick_p2_image(pngs, chosen=None) -> Path:
    """The PNG question 2 discusses: ``chosen`` (a file name or stem), default the first."""
    if chosen is None:
        return pngs[0]
    match = [p for p in pngs if chosen in (p.name, p.stem) or Path(chosen).stem == p.stem]
    if not match:
        raise UserError(f"--p2-image {chosen} is not among the captioned images: "
                        f"{', '.join(p.stem for p in pngs[:10])}{' ...' if len(pngs) > 10 else ''}")
    return match[0]


def section_p2(p2_dir, refs, figs, chosen=None, limit=P2_LIMIT, trust=False):
    """Problem 2: question 1, the per-token cross-attention of the first ``limit`` captioned images (None: all);
    question 2, one image (``chosen``, a file name or stem; default the first) token by token."""
    pngs = p2_images(p2_dir, limit)
    figs.mkdir(parents=True, exist_ok=True)
    blocks = [("h", 2, "Problem 2: visualization in image captioning"),
              ("h", 3, "Question 1: cross-attention for each generated token")]
    shown = pngs if limit is None else pngs[:limit]
    if len(shown) < len(pngs):
        blocks.append(("p", f"Shown: the first {len(shown)} of the {len(pngs)} captioned images in {p2_dir}; "
                            "--p2-limit N shows N of them."))
    prompts = []
    for png in shown:
        caption = png.with_suffix(".txt").read_text().strip() if png.with_suffix(".txt").is_file() else "?"
        line = f"{png.stem}: generated \"{caption}\""
        if refs:
            line += "; ground truth: " + (" / ".join(f"\"{c}\"" for c in refs.get(png.stem, [])) or "(none given)")
        meta, maps = _read_caption(png)
        if meta is None:
            path, note = figs / f"p2_{png.name}", ""
            shutil.copyfile(png, path)
        else:
            path, note = _token_figure(meta, maps, png, figs / f"tokens_{png.stem}.png", cols=5)
        blocks.append(("img", path, line + note))
        prompts.append(line)
    page = p2_explorer(pngs, figs / "p2_explorer.html")
    if page is not None:
        blocks.append(("link", page, "Every token, layer and head of these images: figures/p2_explorer.html, "
                                     "self-contained, opens in a browser"))
    if refs:
        blocks += caption_scores(p2_dir, refs)
    blocks.append(discussion(prompts))
    blocks += section_p2_one(pngs, chosen, figs, trust)
    return blocks


def section_p2_one(pngs, chosen, figs, trust=False):
    """Problem 2, question 2: one caption token by token, with where each token's map peaks and how flat it is."""
    png = pick_p2_image(pngs, chosen)
    meta, maps = _read_caption(png)
    blocks = [("h", 3, f"Question 2: one image, token by token ({png.stem})")]
    if meta is None:
        return blocks + [("p", f"{png.stem} has no .json and .npy beside its PNG (hw3_2.sh writes them): nothing to "
                               "measure."), discussion([])]
    path, note = _token_figure(meta, maps, png, figs / f"words_{png.stem}.png", cols=3)
    peaks = evidence.token_peaks(maps)
    cells = maps.shape[1] * maps.shape[2]
    rows = [[i + 1, tok, f"({p['row']}, {p['col']}) of {maps.shape[1]}x{maps.shape[2]}", p["where"],
             f"{p['peak']:.3f}", f"{p['peak'] * cells:.1f}"] for i, (tok, p) in enumerate(zip(meta["tokens"], peaks))]
    flat = min(range(len(peaks)), key=lambda i: peaks[i]["peak"])
    sharp = max(range(len(peaks)), key=lambda i: peaks[i]["peak"])
    prompts = [f"token {i + 1}, \"{tok}\", looks at the {p['where']} (peak {p['peak'] * cells:.1f} times uniform)"
               for i, (tok, p) in enumerate(zip(meta["tokens"], peaks))]
    prompts.append(f"sharpest map: token {sharp + 1}, \"{meta['tokens'][sharp]}\" (peak weight "
                   f"{peaks[sharp]['peak']:.3f}); flattest: token {flat + 1}, \"{meta['tokens'][flat]}\" (peak weight "
                   f"{peaks[flat]['peak']:.3f}); does a flat map go with a "
                   "word the image does not show, or with a function word?")
    if trust:
        prompts.append("how often a word's map peaks on the object it names, over many images: see the appendix")
    return blocks + [("img", path, f"The caption of {png.stem}, three tiles a row.{note}"),
                     ("table", ["#", "token", "peak cell (row, col)", "where in the image", "peak weight",
                                "peak / uniform"], rows), discussion(prompts)]


def section_trust(pointing: dict) -> list:
    """The pointing game and the faithfulness checks of every map, per problem, from the pointing tools' --json,
    with only the statements the numbers support (``explanations.pointing.findings``)."""
    from explanations.pointing import FAITHFULNESS, findings
    given = {problem: path for problem, path in pointing.items() if path}
    if not given:
        return []
    blocks = [("h", 2, "Appendix: can the maps be trusted?"),
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
                 class_names=None, device="cpu", pdf=True, pointing=None, student=("<your name>", "<student ID>"),
                 p2_image=None, p2_limit=P2_LIMIT) -> dict:
    """Write report.md, report.html, figures/*.png and (with Chromium) report.pdf into ``output``."""
    output = Path(output)
    if p2_dir is not None:  # a wrong --p2-image or --p2-limit is said before Problem 1's long part, not after it
        pick_p2_image(p2_images(p2_dir, p2_limit), p2_image)
    elif p2_image is not None:
        raise UserError("--p2-image needs --p2-dir")
    runs = [evidence.load_run(p1_run)] + [evidence.load_run(d) for d in compare]
    val_dir = Path(val_dir)
    list_images(val_dir)  # one clear error for a missing or empty folder, before any work
    if attn_images is None:
        attn_images = [val_dir / n for n in SPEC_IMAGES]
    missing = [str(p) for p in attn_images if not Path(p).is_file()]
    if missing:
        raise UserError(f"attention image(s) not found: {', '.join(missing)} (pass --attn-images)")
    for problem, path in (pointing or {}).items():  # a bad results file is said before the long part
        if path:
            read_json(path, f"{problem} pointing results")
    trust = {problem: path for problem, path in (pointing or {}).items() if path}
    figs = output / "figures"
    t0 = time.time()
    acc_blocks, model, config, targets, preds, acc = section_accuracy(runs[0], val_dir, device, figs)
    names = class_labels(class_names, config["num_classes"], runs[0]["dir"])
    name, sid = student
    blocks = [("h", 1, f"DLCV HW3 report: {name} ({sid})"),
              ("p", "Every figure, table and measured sentence below is computed from the runs and folders named in "
                    "it; each question ends with a place for your own discussion, which lists the measured facts "
                    "to start from. Replace each 'Your discussion' block with your words before handing in."),
              ("h", 2, "Problem 1: image classification with a Vision Transformer"), *acc_blocks]
    blocks += section_settings(runs, targets, preds, names, figs)
    blocks += section_pos(model, figs)
    blocks += section_attention(model, config, attn_images, names, device, figs, trust="Problem 1" in trust)
    if p2_dir is not None:
        blocks += section_p2(p2_dir, read_captions(p2_captions), figs, chosen=p2_image, limit=p2_limit,
                             trust="Problem 2" in trust)
    blocks += section_trust(pointing or {})
    paths = render.write_all(blocks, output, f"DLCV HW3 report: {name}", pdf=pdf)
    return {**paths, "accuracy": acc, "seconds": time.time() - t0, "figures": sorted(figs.glob("*.png")),
            "blocks": blocks}

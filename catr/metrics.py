"""Caption metrics that need no external scorer: exact match and per-word accuracy against the references (word
pieces, compared position by position), and, for the caption world, whether a caption names every object."""
import re


def exact_match(generated: list, references: list[list]) -> bool:
    """``generated`` equals one of the references (sequences of word pieces or ids, [CLS]/[SEP] excluded)."""
    return any(list(generated) == list(r) for r in references)


def word_accuracy(generated: list, references: list[list]) -> float:
    """Best over references of the fraction of positions where the words agree, over the longer length."""
    def acc(r):
        return sum(a == b for a, b in zip(generated, r)) / max(len(generated), len(r), 1)
    return max((acc(r) for r in references), default=0.0)


def object_pairs(caption: str, colours, shapes) -> list[tuple[str, str]]:
    """(colour, shape) for every colour word directly followed by a shape word, in caption order."""
    words = re.findall(r"[a-z]+", caption.lower())
    return [(a, b) for a, b in zip(words, words[1:]) if a in colours and b in shapes]


def names_objects(caption: str, objects: list[dict], colours, shapes) -> bool:
    """The caption names exactly the scene's objects, each with its own colour and shape (``objects``: the caption
    world's ``[{"words": [colour, shape], ...}]``), whatever the order."""
    return sorted(object_pairs(caption, colours, shapes)) == sorted(tuple(o["words"]) for o in objects)


# ---- The COCO caption evaluation (pycocoevalcap): BLEU-1..4, METEOR, ROUGE-L, CIDEr-D -------------------------

NO_JAVA = ("java not found: captions are split into lowercase words (not the PTB tokenizer) and METEOR is left out "
           "(install a JRE, e.g. apt-get install default-jre-headless, for the COCO evaluation's exact numbers)")
NO_SPICE = "SPICE is not computed: it fetches Stanford CoreNLP models on first use"


def java_available() -> bool:
    import shutil
    return shutil.which("java") is not None


def split_words(text: str) -> list[str]:
    """The tokenizer without Java: lowercase words and numbers, punctuation dropped (as the PTB tokenizer's output
    is after pycocoevalcap removes punctuation, except for contractions such as "n't")."""
    return re.findall(r"[a-z0-9]+", text.lower())


def tokenize(captions: dict, java: bool) -> dict:
    """{key: [caption]} -> {key: [space-joined tokens]}, by the PTB tokenizer (Java) or ``split_words``."""
    if java:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
        return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})
    return {k: [" ".join(split_words(c)) for c in v] for k, v in captions.items()}


def require_scorers(why: str) -> None:
    """One line, before any work, when pycocoevalcap (the scorers) is not installed; ``why`` names what needs it
    and how to do without."""
    from hw3io.errors import INSTALL_HINT, UserError
    try:
        import pycocoevalcap.bleu.bleu  # noqa: F401  (light: the scorers' module, not Java's)
    except ImportError:
        raise UserError(f"Python package 'pycocoevalcap' is missing: {why}; {INSTALL_HINT}") from None


def caption_metrics(results: dict, references: dict, java: bool | None = None) -> dict:
    """Corpus scores of ``results`` ({image key: caption}) against ``references`` ({image key: [captions]}) over
    the results' images, as the COCO caption evaluation computes them (CIDEr is its CIDEr-D: clipped n-gram counts,
    a length penalty with sigma 6, scaled by 10; its document frequencies come from these references)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from hw3io import UserError
    java = java_available() if java is None else java
    unknown = [k for k in results if k not in references]
    if unknown:
        raise UserError(f"{len(unknown)} result(s) name images with no reference caption, e.g. {unknown[0]!r}")
    if not results:
        raise UserError("no results to score")
    keys = sorted(results, key=str)
    gts = tokenize({k: references[k] for k in keys}, java)
    res = tokenize({k: [results[k]] for k in keys}, java)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"BLEU-{n}": float(b) for n, b in enumerate(bleu, 1)}
    if java:
        from pycocoevalcap.meteor.meteor import Meteor
        meteor = Meteor()
        try:
            scores["METEOR"] = float(meteor.compute_score(gts, res)[0])
        finally:
            meteor.meteor_p.kill()
            meteor.meteor_p.wait()
    scores["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr-D"] = float(Cider().compute_score(gts, res)[0])
    return scores


def read_references(path) -> tuple[dict, dict]:
    """({image key: [captions]}, {file name: image key}) from a COCO captions file (keys: image ids) or a text file
    of ``<file name> <caption>`` lines (keys: file names; a ``#k`` after the name, a tab or a comma between the two
    are allowed, as in Flickr-style caption.txt files)."""
    import json
    from pathlib import Path
    from hw3io import UserError
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"reference file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read references {path}: {e}") from None
    refs = {}
    if text.lstrip().startswith(("{", "[")):
        try:
            coco = json.loads(text)
            names = {im["id"]: str(im["file_name"]) for im in coco["images"]}
            for a in coco["annotations"]:
                refs.setdefault(a["image_id"], []).append(str(a["caption"]))
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"not a COCO captions file: {path} ({type(e).__name__}: {e})") from None
        return refs, {name: k for k, name in names.items()}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = re.match(r"\s*([^\s,#]+)(?:#\d+)?[\s,]+(\S.*)$", line)
        if not m:
            raise UserError(f"{path}:{n}: expected '<file name> <caption>', got {line.strip()[:60]!r}")
        refs.setdefault(m.group(1), []).append(m.group(2).strip())
    if not refs:
        raise UserError(f"{path}: no captions")
    return refs, {k: k for k in refs}


def references_by_name(path) -> dict:
    """``read_references`` keyed by image file name: {file name: [captions]}."""
    refs, ids_by_name = read_references(path)
    return {name: refs[key] for name, key in ids_by_name.items() if key in refs}


def read_results(path) -> dict:
    """COCO results ``[{"image_id", "caption"}]`` -> {image id: caption}."""
    import json
    from pathlib import Path
    from hw3io import UserError
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
        results = {r["image_id"]: str(r["caption"]) for r in rows}
    except FileNotFoundError:
        raise UserError(f"results file not found: {path}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"not a COCO results file ([{{image_id, caption}}]): {path} ({type(e).__name__}: {e})") \
            from None
    if len(results) != len(rows):
        raise UserError(f"{path}: {len(rows) - len(results)} image id(s) have more than one caption")
    return results


def match_keys(results: dict, ids_by_name: dict) -> dict:
    """Results re-keyed to the references' keys where they name an image by file name, stem or number (a results
    file with numeric ids against a caption.txt keyed by ``0001.jpg``)."""
    from pathlib import Path
    aliases = {}
    for name, key in ids_by_name.items():
        stem = Path(name).stem
        aliases.update({name: key, stem: key, **({int(stem): key} if stem.isdigit() else {})})
    keys = set(ids_by_name.values())
    return {(k if k in keys else aliases.get(k, k)): v for k, v in results.items()}


def folder_captions(folder) -> dict[str, tuple[str, str]]:
    """A hw3_2.sh output folder's captions: ``{stem: (image file name, caption)}`` from each ``<stem>.json``, in
    file-name order; one error line for a folder without outputs or a file that is not one."""
    import json
    from pathlib import Path
    from hw3io import UserError
    metas = sorted(Path(folder).glob("*.json"))
    if not Path(folder).is_dir() or not metas:
        raise UserError(f"no hw3_2.sh outputs (<stem>.json) in {folder}")
    captions = {}
    for path in metas:
        try:
            meta = json.loads(path.read_text())
            captions[path.stem] = (Path(meta["image"]).name, str(meta["caption"]))
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{path} is not a hw3_2.sh output (needs image and caption)") from None
    return captions


def folder_results(folder, ids_by_name: dict | None = None) -> list[dict]:
    """A hw3_2.sh output folder as COCO results: each ``<stem>.json``'s caption under the image id its file name
    has in the references (``ids_by_name``), else the stem as a number when it is one, else the file name."""
    rows = []
    for stem, (name, caption) in folder_captions(folder).items():
        if ids_by_name and name in ids_by_name:
            key = ids_by_name[name]
        else:
            key = int(stem) if stem.isdigit() else name
        rows.append({"image_id": key, "caption": caption})
    return rows


def format_scores(scores: dict) -> str:
    from hw3io import markdown_table
    return markdown_table(("metric", "score"), [(k, f"{v:.3f}") for k, v in scores.items()], "lr")


def main(argv=None):
    import argparse
    import json
    from hw3io import UserError, atomic_write_text
    p = argparse.ArgumentParser(prog="python3 -m catr.metrics", description=(
        "Score captions as the COCO caption evaluation does (pycocoevalcap): BLEU-1..4, METEOR (needs Java), "
        "ROUGE-L and CIDEr-D, printed as the scorer returns them (papers print x100). " + NO_SPICE + "."))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--results", help="COCO results JSON: [{\"image_id\", \"caption\"}]")
    src.add_argument("--folder", help="a hw3_2.sh output folder (its <stem>.json captions) instead of --results")
    p.add_argument("--references", help="COCO captions JSON, or a caption.txt of '<file name> <caption>' lines "
                                        "(several lines per image); required unless only --save-results")
    p.add_argument("--save-results", metavar="PATH", help="write the captions as a COCO results JSON")
    p.add_argument("--no-java", action="store_true", help="never call Java (word split, no METEOR), as "
                                                          "p2_train.py's logged scores")
    a = p.parse_args(argv)
    if not a.references and not (a.folder and a.save_results):
        raise UserError("--references is required to score (without it: --folder DIR --save-results PATH)")
    refs, ids_by_name = read_references(a.references) if a.references else ({}, {})
    if a.folder:
        rows = folder_results(a.folder, ids_by_name)
        results = {r["image_id"]: r["caption"] for r in rows}
    else:
        results = read_results(a.results)
        rows = [{"image_id": k, "caption": v} for k, v in results.items()]
    results = match_keys(results, ids_by_name)
    if a.save_results:
        atomic_write_text(a.save_results, json.dumps(rows, indent=1) + "\n")
        print(f"wrote {len(rows)} captions to {a.save_results}")
    if not a.references:
        return
    java = java_available() and not a.no_java
    if not java and not a.no_java:
        print(NO_JAVA)
    scores = caption_metrics(results, refs, java)
    missing = len(set(refs) - set(results))
    print(f"{len(results)} image(s) scored against {sum(len(refs[k]) for k in results)} reference caption(s)"
          + (f"; {missing} reference image(s) have no result" if missing else ""))
    print(format_scores(scores))


if __name__ == "__main__":
    import sys
    from hw3io import run_cli
    sys.exit(run_cli(main))

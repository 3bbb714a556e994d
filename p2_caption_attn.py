"""Caption images with CATR and draw each generated token's decoder cross-attention (one tiled PNG per image), or
another explanation of the same decisions (--explain)."""
import argparse
import os
import sys

from hw3io.errors import run_cli


def beam_width(text: str) -> int:
    """--beam, or $CATR_BEAM behind its default: a bad value is one error line, like every other bad input."""
    from hw3io import UserError
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise UserError(f"--beam (or $CATR_BEAM) must be a whole number of at least 1, not {text!r}")
    return k


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", required=True, help="folder of images")
    p.add_argument("--output-dir", required=True, help="writes <stem>.png, <stem>.npy (maps) and <stem>.txt")
    p.add_argument("--checkpoint", default=os.environ.get("CATR_CHECKPOINT") or None,
                   help="CATR .pth file, official or ours (default: $CATR_CHECKPOINT, else download --version "
                        "into the torch hub cache)")
    p.add_argument("--version", default="v3", choices=("v1", "v2", "v3"), help="official release (default: v3)")
    p.add_argument("--checkpoint-url", default=os.environ.get("CATR_CHECKPOINT_URL") or None,
                   help="download the weights from here instead of the --version release (default: "
                        "$CATR_CHECKPOINT_URL)")
    p.add_argument("--vocab", default=os.environ.get("CATR_VOCAB") or None,
                   help="BERT uncased vocab.txt (default: $CATR_VOCAB, else from the Hugging Face hub, cached)")
    p.add_argument("--layer", type=int, default=-1,
                   help="decoder layer whose cross-attention is drawn, 0-based; -1 last (default), -2 second-to-last")
    p.add_argument("--heads", action="store_true", help="keep per-head maps in the .npy (the PNG shows their mean)")
    p.add_argument("--all-layers", action="store_true",
                   help="also write <stem>.layers.npy: every decoder layer's per-head maps, (layers, T, heads, H', "
                        "W'), for the explorer (attention only; on with $CATR_HTML=1 when --explain is attention)")
    p.add_argument("--html", action="store_true", default=os.environ.get("CATR_HTML") == "1",
                   help="also write index.html, a self-contained page to browse the folder's maps by image, token, "
                        "layer and head (default: off; $CATR_HTML=1 turns on --html, and --all-layers for "
                        "attention)")
    p.add_argument("--beam", default=os.environ.get("CATR_BEAM") or "1",
                   help="beam width; 1 (default, or $CATR_BEAM) is greedy decoding, as official CATR captions")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="GNMT length penalty alpha for beam search: a caption's log-probability is divided by "
                        "((5 + length) / 6) ** alpha, length counting [SEP] (default: 1.0; 0 favours short captions)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")

    # Explanation: what each tile shows. Every method explains the same decision, the generated token's
    # log-probability at the query that generated it, and writes the same files.
    g = p.add_argument_group("explanation")
    g.add_argument("--explain", default="attention", choices=("attention", "relevance", "rise", "occlusion"),
                   help="attention (default, the homework's maps): raw cross-attention of --layer, head mean; "
                        "relevance: gradient-weighted attention relevance through every layer (Chefer et al., ICCV "
                        "2021); rise: the token's log-probability under random masks (Petsiuk et al., BMVC 2018); "
                        "occlusion: its change as patches are occluded. All but attention take seconds to minutes "
                        "per image and run one image at a time")
    g.add_argument("--masks", type=int, default=1000, help="rise: random masks per image (default: 1000)")
    g.add_argument("--cells", type=int, default=8,
                   help="rise: cells per side of each mask's coarse grid; occlusion: patches along the longer image "
                        "side (default: 8)")
    g.add_argument("--seed", type=int, default=0, help="rise: seed of the random masks (default: 0)")
    return p


def parse_args(argv=None):
    """The flags, with $CATR_HTML=1 resolved: it turns on --all-layers only for attention, the one method with
    per-layer maps, so the graded script with any --explain still runs (an explicit --all-layers is still refused
    for the others)."""
    a = get_args_parser().parse_args(argv)
    a.all_layers = a.all_layers or (os.environ.get("CATR_HTML") == "1" and a.explain == "attention")
    return a


def main(argv=None):
    a = parse_args(argv)
    beam = beam_width(a.beam)
    from catr.explain import ExplainOptions
    from catr.pipeline import caption_folder
    explain = ExplainOptions(a.explain, masks=a.masks, cells=a.cells, seed=a.seed)
    done = caption_folder(a.images, a.output_dir, checkpoint=a.checkpoint, version=a.version, url=a.checkpoint_url,
                          vocab=a.vocab, layer=a.layer, heads=a.heads, device=a.device, beam=beam,
                          alpha=a.length_penalty, explain=explain, all_layers=a.all_layers, html=a.html)
    print(f"wrote {len(done.written)} PNG(s) to {a.output_dir}")
    if a.html:
        print(f"explorer: {os.path.join(a.output_dir, 'index.html')}")
    for path in done.partial:
        print(f"warning: {path} is truncated: captioned from the part that decodes", file=sys.stderr)
    if done.unreadable:
        print(f"error: {len(done.unreadable)} image(s) do not decode and have no output in {a.output_dir} (every "
              f"other image has its PNG): {'; '.join(r for _, r in done.unreadable)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run_cli(main))

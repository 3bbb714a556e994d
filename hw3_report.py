"""Build the student's HW3 report in the homework's own numbering: every figure and measured number each question
asks for, and after each question a marked place for the student's discussion listing the measured facts; as
report.md, a self-contained report.html and (when headless Chromium is installed) report.pdf."""
import argparse
import sys

from hw3io.errors import run_cli


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__)
    g = p.add_argument_group("Student")
    g.add_argument("--student-name", default="<your name>", help="shown in the title (default: a placeholder)")
    g.add_argument("--student-id", default="<student ID>", help="shown in the title (default: a placeholder)")
    g = p.add_argument_group("Problem 1")
    g.add_argument("--p1-run", required=True, help="the chosen p1_train.py output folder (best.safetensors, log.csv)")
    g.add_argument("--compare", nargs="*", default=[], help="other runs for the settings table and curves")
    g.add_argument("--val-dir", required=True, help="the val folder; the final accuracy is recomputed on it")
    g.add_argument("--attn-images", nargs="+", default=None,
                   help="images for the attention figure (default: 26_5064.jpg 29_4718.jpg 31_4838.jpg in --val-dir)")
    g.add_argument("--class-names", default=None,
                   help="a file with one class name per line, in label order (default: the run's classes.txt, "
                        "which p1_train.py copies from the data folder; else label numbers)")
    g = p.add_argument_group("Problem 2")
    g.add_argument("--p2-dir", default=None, help="a hw3_2.sh output folder")
    g.add_argument("--p2-image", default=None,
                   help="the image question 2 discusses token by token: a file name or stem in --p2-dir "
                        "(default: the first)")
    g.add_argument("--p2-limit", type=int, default=10, metavar="N",
                   help="show the first N captioned images in question 1, one figure each (default: 10; the homework "
                        "has five; the report says how many of how many it shows)")
    g.add_argument("--p2-captions", default=None,
                   help="ground truth: lines '<file name> <caption>' (e.g. five per image), or a COCO captions .json "
                        "(optional); shown beside each caption and scored (BLEU, ROUGE-L, CIDEr-D; METEOR with Java)")
    g = p.add_argument_group("Can the maps be trusted? (both optional)")
    g.add_argument("--p1-pointing", default=None, help="the --json of python3 -m vitpet.pointing (with --faithfulness "
                   "for the deletion, insertion and randomisation columns)")
    g.add_argument("--p2-pointing", default=None, help="the --json of python3 -m catr.pointing")
    g = p.add_argument_group("Output")
    g.add_argument("--output", default="report_out",
                   help="folder for report.md/.html/.pdf and figures/ (default: report_out)")
    g.add_argument("--no-pdf", action="store_true", help="skip the PDF even when Chromium is installed")
    g.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    return p


def main(argv=None):
    a = get_args_parser().parse_args(argv)
    from hw3io import ensure_writable_dir, pick_device
    from report.build import build_report
    ensure_writable_dir(a.output)
    r = build_report(a.p1_run, a.output, val_dir=a.val_dir, compare=a.compare, attn_images=a.attn_images,
                     p2_dir=a.p2_dir, p2_captions=a.p2_captions, class_names=a.class_names,
                     pointing={"Problem 1": a.p1_pointing, "Problem 2": a.p2_pointing},
                     device=pick_device(a.device), pdf=not a.no_pdf, student=(a.student_name, a.student_id),
                     p2_image=a.p2_image, p2_limit=a.p2_limit)
    print(f"val accuracy {r['accuracy']:.4f}; report built in {r['seconds']:.0f} s")
    print(f"wrote {r['md']}, {r['html']} and {len(r['figures'])} figures")
    if r["pdf"]:
        print(f"wrote {r['pdf']}")
    elif not a.no_pdf:
        print("no PDF: install headless Chromium (Debian: apt-get install chromium-headless-shell) and run again, "
              "or print report.html to PDF from any browser")


if __name__ == "__main__":
    sys.exit(run_cli(main))

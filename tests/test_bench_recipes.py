"""The benches read the demo's recipe from scripts/demo.sh (bench_p1_pointing.demo_flags) instead of copying it."""
from bench.bench_p1_pointing import demo_flags as flags
from helpers import ROOT


def test_demo_flags_drop_the_folders_and_keep_every_flag(tmp_path):
    script = tmp_path / "demo.sh"
    script.write_text("# the demo's data (one apostrophe: a comment, not a quote)\nout=demo_out\n"
                      'python3 -m synth.pets "$out/data" --train-per-class 7 --val-per-class 2\n'
                      'python3 p1_train.py --data-dir "$out/data" --output-dir "$out/p1" --model m \\\n'
                      '  --epochs 3 --workers 2\n')
    assert flags("synth.pets", script) == ["--train-per-class", "7", "--val-per-class", "2"]
    assert flags("p1_train.py", script) == ["--model", "m", "--epochs", "3", "--workers", "2"]


def test_the_real_demos_flags_parse():
    import p1_train
    args = p1_train.get_args_parser().parse_args(["--data-dir", "d", *flags("p1_train.py")])
    assert args.model == "vit_demo_patch8" and not args.pretrained
    demo = (ROOT / "scripts" / "demo.sh").read_text()
    assert "--train-per-class" in flags("synth.pets") and " ".join(flags("synth.pets")) in demo

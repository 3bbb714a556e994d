"""Training CATR (catr.data, catr.train, p2_train.py): teacher forcing, COCO input checks, exact resume, and the
checkpoint hw3_2.sh reads as it is."""
import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from catr.metrics import caption_metrics
from helpers import ROOT, assert_one_line_error, run, script_env


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from synth.captionworld import write_split, write_vocab
    root = tmp_path_factory.mktemp("world")
    write_split(root / "train", 48, seed=1)
    write_split(root / "val", 8, seed=2, first_id=49)
    write_vocab(root / "vocab.txt")
    return root


def train_args(world, out, *extra, train="train"):
    return ["python3", "p2_train.py", "--preset", "tiny", "--train-annotations", str(world / train / "captions.json"),
            "--train-images", str(world / train / "images"), "--val-annotations", str(world / "val" / "captions.json"),
            "--val-images", str(world / "val" / "images"), "--vocab", str(world / "vocab.txt"),
            "--output-dir", str(out),
            "--batch-size", "8", "--workers", "0", "--caption-eval-images", "4", *extra]


def tiny_setup(world, n=4):
    from catr.caption import build_model
    from catr.config import ARCHITECTURES, CATRConfig
    from catr.data import CaptionDataset, collate, load_coco_captions
    from catr.tokenizer import load_tokenizer
    tok = load_tokenizer(world / "vocab.txt")
    data = load_coco_captions(world / "train" / "captions.json", world / "train" / "images", tok, 32)
    config = CATRConfig(**{**ARCHITECTURES["tiny"], "vocab_size": tok.vocab_size, "pad_token_id": tok.pad_id})
    torch.manual_seed(0)
    model = build_model(config)
    ds = CaptionDataset(data, config.max_dim)
    items = [ds[i] for i in range(len(ds))]
    size = max({x.shape for x, _ in items}, key=lambda s: sum(x.shape == s for x, _ in items))
    return model, tok, collate([it for it in items if it[0].shape == size][:n], tok.pad_id)  # one size: no padding


@pytest.fixture(scope="module")
def overfit(world):
    """The tiny preset's model trained on four captions of same-size images: (model, tokenizer, batch, first and
    final loss)."""
    from catr.train import caption_loss
    model, tok, batch = tiny_setup(world)
    loss_fn = caption_loss(tok.pad_id)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    first = None
    for _ in range(150):
        loss, n = loss_fn(model, batch, "cpu")
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert n == int((batch[2][:, 1:] != tok.pad_id).sum()) < batch[2][:, 1:].numel()  # padding is not counted
    model.eval()
    with torch.no_grad():
        final = loss_fn(model, batch, "cpu")[0].item()
    return model, tok, batch, first, final


def test_tiny_model_overfits_four_captions(overfit):
    model, tok, batch, first, final = overfit
    assert first > 2.0 and final < 0.02, (first, final)


def test_padding_is_ignored_by_the_loss(world):
    from catr.train import caption_loss
    model, tok, batch = tiny_setup(world, n=2)
    model.eval()
    images, mask, ids, pad = batch
    padded = torch.cat([ids, torch.full((2, 5), tok.pad_id)], 1)
    with torch.no_grad():
        a = caption_loss(tok.pad_id)(model, batch, "cpu")
        b = caption_loss(tok.pad_id)(model, (images, mask, padded, padded == tok.pad_id), "cpu")
    assert a[1] == b[1] and abs(a[0].item() - b[0].item()) < 1e-5


def test_teacher_forced_logits_equal_greedy_decoding_at_every_position(world):
    """Causality: the logits at position t of one teacher-forced pass over the greedy caption are exactly what
    greedy decoding saw when it chose token t+1."""
    from catr.decode import greedy_decode
    model, tok, batch = tiny_setup(world, n=1)
    model.eval()
    with torch.no_grad():
        model.mlp.layers[-1].weight.mul_(30)  # random weights: spread logits so the caption is not one token
    images, mask = batch[0][:1], batch[1][:1]
    ids, ended, _ = greedy_decode(model, images, mask, tok.start_id, tok.end_id, max_len=12, stop_at_end=False)
    assert len(set(ids)) > 1
    seq = torch.tensor([[tok.start_id] + ids])
    with torch.no_grad():
        logits = model(images, mask, seq, torch.zeros_like(seq, dtype=torch.bool))[0]
        assert logits[:-1].argmax(-1).tolist() == ids
        memory, fmask, pos, _ = model.encode_image(images, mask)
        for t in range(1, seq.shape[1] + 1):  # the prefix alone gives the same logits at its last position
            step = model.decode(seq[:, :t], None, memory, fmask, pos, last_only=True)[0][0, -1]
            torch.testing.assert_close(step, logits[t - 1], atol=1e-4, rtol=1e-4)


def write_coco(path, images, annotations):
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


@pytest.mark.parametrize("case, fragment", [
    ("missing image", "missing from"), ("empty caption", "empty caption"), ("unknown id", "unknown image id"),
    ("not coco", "not a COCO captions file")])
def test_bad_coco_files_give_one_error_line(world, tmp_path, case, fragment):
    coco = json.loads((world / "train" / "captions.json").read_text())
    images, anns = coco["images"][:8], coco["annotations"][:8]
    if case == "missing image":
        images[3]["file_name"] = "nowhere.png"
    elif case == "empty caption":
        anns[2]["caption"] = "  "
    elif case == "unknown id":
        anns[5]["image_id"] = 99999
    bad = write_coco(tmp_path / "bad.json", images, anns)
    if case == "not coco":
        bad.write_text(json.dumps({"images": images}))
    args = train_args(world, tmp_path / "out")
    args[args.index("--train-annotations") + 1] = str(bad)
    proc = run(args)
    assert_one_line_error(proc, fragment, "bad.json")
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_long_captions_are_cut_with_one_warning(world, capsys):
    from catr.data import load_coco_captions
    from catr.tokenizer import load_tokenizer
    tok = load_tokenizer(world / "vocab.txt")
    data = load_coco_captions(world / "train" / "captions.json", world / "train" / "images", tok, max_length=6)
    out = capsys.readouterr().out
    long = sum(len(tok.encode(c)) > 6 for _, _, c in data.samples)
    assert long > 0 and data.cut == long
    assert out.count("warning:") == 1 and f"{long} of {len(data.samples)}" in out
    assert all(len(ids) <= 6 and ids[0] == tok.start_id and ids[-1] == tok.end_id for _, ids, _ in data.samples)


def test_special_ids_come_from_the_vocabulary(tmp_path):
    """A vocabulary whose [CLS]/[SEP]/[PAD] are not BERT's 101/102/0 still frames captions with them."""
    from catr.tokenizer import load_tokenizer
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["a", "b", "[UNK]", "[SEP]", "red", "[PAD]", "[CLS]", "circle"]) + "\n")
    tok = load_tokenizer(vocab)
    assert (tok.start_id, tok.end_id, tok.pad_id) == (6, 3, 5)
    assert tok.encode("a red circle") == [6, 0, 4, 7, 3]


@pytest.fixture(scope="module")
def trained_run(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("p2run")
    proc = run(train_args(world, out, "--epochs", "2"))
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_training_writes_log_checkpoint_and_vocab(trained_run, world):
    from catr.hub import load_checkpoint_file
    out, proc = trained_run
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0] == "epoch,train_loss,val_loss,val_exact,val_word_acc,val_bleu4,val_cider,lr" and len(rows) == 3
    losses = [float(r.split(",")[1]) for r in rows[1:]]
    assert losses[1] < losses[0]
    ckpt = load_checkpoint_file(out / "checkpoint.pth")  # weights_only: nothing unpickled
    vocab_size = len((world / "vocab.txt").read_text().split())
    assert ckpt["catr_config"]["backbone"] == "convnet" and ckpt["catr_config"]["vocab_size"] == vocab_size
    assert (out / "vocab.txt").read_text() == (world / "vocab.txt").read_text()
    assert "hw3_2.sh" in proc.stdout


def test_checkpoint_round_trips_into_hw3_2(trained_run, world, tmp_path):
    """hw3_2.sh takes the trained checkpoint and its vocabulary with no other flag, and captions exactly what the
    trained model decodes."""
    from catr.caption import create_model
    from catr.pipeline import caption_one
    from catr.tokenizer import load_tokenizer
    from hw3io import load_rgb
    out, _ = trained_run
    images = world / "val" / "images"
    proc = subprocess.run(["bash", "hw3_2.sh", str(images), str(tmp_path / "attn")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=script_env(CATR_CHECKPOINT=str(out / "checkpoint.pth"),
                                                                 CATR_VOCAB=str(out / "vocab.txt")))
    assert proc.returncode == 0, proc.stderr
    model, tok = create_model(checkpoint=out / "checkpoint.pth"), load_tokenizer(out / "vocab.txt")
    for path in sorted(images.glob("*.png")):
        meta = json.loads((tmp_path / "attn" / f"{path.stem}.json").read_text())
        small, _, text = caption_one(model, tok, load_rgb(path), "cpu")
        assert meta["caption"] == text and meta["size"] == [small.width, small.height]
        assert max(small.size) == 128  # the tiny preset's preprocessing, read from the checkpoint
    # the logged BLEU-4 and CIDEr-D are catr.metrics' on the captioned val images (the first 4, --caption-eval-images)
    coco = json.loads((world / "val" / "captions.json").read_text())
    names = {im["id"]: im["file_name"] for im in coco["images"]}
    first = list(dict.fromkeys(a["image_id"] for a in coco["annotations"]))[:4]
    results = {k: json.loads((tmp_path / "attn" / f"{Path(names[k]).stem}.json").read_text())["caption"]
               for k in first}
    refs = {k: [a["caption"] for a in coco["annotations"] if a["image_id"] == k] for k in first}
    scores = caption_metrics(results, refs, java=False)
    last = dict(zip(*[r.split(",") for r in (out / "log.csv").read_text().splitlines()[::2]]))
    assert float(last["val_bleu4"]) == pytest.approx(scores["BLEU-4"], abs=1e-4)
    assert float(last["val_cider"]) == pytest.approx(scores["CIDEr-D"], abs=1e-4)


def test_sigterm_saves_state_and_resume_matches(world, trained_run, tmp_path):
    """A run stopped by SIGTERM mid-training and resumed ends with bitwise the same weights and log."""
    from catr.hub import load_checkpoint_file
    ref, _ = trained_run
    out = tmp_path / "run"
    p = subprocess.Popen(train_args(world, out, "--epochs", "2"), cwd=ROOT, env=script_env(), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in p.stdout:  # stop during the second epoch
        if line.startswith("epoch 0:"):
            p.send_signal(signal.SIGTERM)
            break
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 128 + signal.SIGTERM and "state saved" in stdout, stderr
    proc = run(train_args(world, out, "--epochs", "2", "--resume", "auto"))
    assert proc.returncode == 0 and "resumed from" in proc.stdout, proc.stderr
    a, b = load_checkpoint_file(ref / "checkpoint.pth"), load_checkpoint_file(out / "checkpoint.pth")
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    strip = lambda text: [r.split(",")[:5] for r in text.splitlines()]  # noqa: E731
    assert strip((ref / "log.csv").read_text()) == strip((out / "log.csv").read_text())


def test_init_from_an_official_layout_checkpoint_loads_strictly(tmp_path):
    """--init with an official-layout file (a bare ``model`` state dict, full ResNet-101 CATR, BERT-sized
    vocabulary): every weight arrives; a missing key is one error line."""
    from catr.caption import build_model
    from catr.config import CaptionTrainConfig, CATRConfig
    from catr.train import initial_model
    from hw3io import UserError
    torch.manual_seed(1)
    official = build_model(CATRConfig())
    path = tmp_path / "weights.pth"
    torch.save({"model": official.state_dict(), "epoch": 3}, path)
    cfg = CaptionTrainConfig(init=str(path)).resolved()
    model, config = initial_model(cfg, vocab_size=30522, pad_id=0)
    assert config == CATRConfig()
    for k, v in official.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    with pytest.raises(UserError, match="27-token|30522-token"):
        initial_model(cfg, vocab_size=27, pad_id=0)
    sd = official.state_dict()
    sd.pop("mlp.layers.0.bias")
    torch.save({"model": sd}, path)
    with pytest.raises(UserError, match="does not match the CATR architecture"):
        initial_model(cfg, vocab_size=30522, pad_id=0)


def test_resnet_backbone_starts_from_imagenet_through_the_torch_hub_cache(tmp_path, monkeypatch):
    """The catr preset's ResNet loads torchvision's ImageNet file from $TORCH_HOME (here planted, offline), every
    tensor strictly; DETR's rule then trains only layer2-4 of it."""
    import torchvision
    from catr.backbone import Backbone, load_imagenet_weights
    from catr.config import CaptionTrainConfig
    from catr.train import build_optimizer
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(2)
    reference = torchvision.models.resnet18()
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1])
    backbone = Backbone("resnet18", dilation=False)  # BasicBlock ResNets cannot dilate
    load_imagenet_weights(backbone, "resnet18")
    for k, v in backbone.body.state_dict().items():
        assert torch.equal(v, reference.state_dict()[k]), k

    class Model(torch.nn.Module):  # the shape build_optimizer expects: backbone[0] and the rest
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Sequential(backbone)
            self.head = torch.nn.Linear(2, 2)

    model = Model()
    opt = build_optimizer(model, CaptionTrainConfig(preset="catr").resolved())
    trained = {n for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trained and all(any(f"layer{k}" in n for k in (2, 3, 4)) for n in trained)
    assert [g["lr"] for g in opt.param_groups] == [1e-4, 1e-5]


def test_batched_greedy_decoding_equals_one_image_at_a_time(overfit):
    """The val captions come from greedy_decode_batch over same-size images: the same tokens, and the same
    stops, as greedy_decode image by image (captions cut at max_len 4, and ended at 32)."""
    from catr.decode import greedy_decode, greedy_decode_batch
    model, tok, (images, mask, ids, _), _, _ = overfit
    stops = set()
    for max_len in (4, 32):
        batch = greedy_decode_batch(model, images, mask, tok.start_id, tok.end_id, max_len=max_len)
        single = [greedy_decode(model, images[i:i + 1], mask[i:i + 1], tok.start_id, tok.end_id, max_len=max_len)[:2]
                  for i in range(len(images))]
        assert [(ids, ended) for ids, ended in batch] == single
        stops |= {e for _, e in single}
    assert stops == {True, False}
    assert [b for b, _ in batch] == [[t for t in row[1:].tolist() if t not in (tok.end_id, tok.pad_id)] for row in ids]


def test_a_checkpoint_from_a_newer_version_is_one_error_line(tmp_path):
    from catr_tiny import tiny_config, tiny_model, write_images, write_vocab
    config = dict(tiny_config().to_dict(), future_field=1)
    torch.save({"model": tiny_model().state_dict(), "catr_config": config}, tmp_path / "new.pth")
    write_images(tmp_path / "images")
    proc = run(["python3", "p2_caption_attn.py", "--images", str(tmp_path / "images"), "--output-dir",
                str(tmp_path / "out"), "--checkpoint", str(tmp_path / "new.pth"), "--vocab",
                str(write_vocab(tmp_path / "vocab.txt"))])
    assert_one_line_error(proc, "future_field", "newer version")
    assert not (tmp_path / "out").exists()


def test_torchrun_two_ranks_with_bf16_and_accumulation_train_a_checkpoint_hw3_2_reads(world, tmp_path):
    """CATR trains like Problem 1: torchrun DDP (gloo here), --amp and --accum-steps through the same core."""
    out = tmp_path / "ddp"
    proc = run(["python3", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                *train_args(world, out, "--epochs", "1", "--batch-size", "4", "--accum-steps", "2",
                            "--amp", "bf16")[1:]], OMP_NUM_THREADS="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on 2 x cpu" in proc.stdout and "effective batch 16 (4 per device x 2 devices x 2 accumulation)" in \
        proc.stdout and "amp bfloat16" in proc.stdout
    assert sum(l.startswith("epoch 0:") for l in proc.stdout.splitlines()) == 1  # rank 0 alone reports
    assert "(4 images captioned" in proc.stdout  # val split over the ranks, counted once
    attn = tmp_path / "attn"
    proc = subprocess.run(["bash", "hw3_2.sh", str(world / "val" / "images"), str(attn)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env=script_env(CATR_CHECKPOINT=str(out / "checkpoint.pth"),
                                         CATR_VOCAB=str(out / "vocab.txt")))
    assert proc.returncode == 0, proc.stderr
    assert len(list(attn.glob("*.png"))) == len(list((world / "val" / "images").glob("*.png")))


def test_official_preset_trains_a_step_offline_from_a_random_resnet(world, tmp_path):
    from synth.captionworld import write_split
    write_split(tmp_path / "two", 2, seed=3)
    out = tmp_path / "catr"
    proc = run(["python3", "p2_train.py", "--preset", "catr", "--backbone-weights", "none",
                "--train-annotations", str(tmp_path / "two" / "captions.json"),
                "--train-images", str(tmp_path / "two" / "images"),
                "--val-annotations", str(tmp_path / "two" / "captions.json"),
                "--val-images", str(tmp_path / "two" / "images"), "--vocab", str(world / "vocab.txt"),
                "--epochs", "1", "--batch-size", "2", "--workers", "0", "--caption-eval-images", "0",
                "--output-dir", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resnet101 starts at random" in proc.stdout and "6+6 layers" in proc.stdout
    assert "1 steps/epoch" in proc.stdout and (out / "checkpoint.pth").is_file()


def test_corrupt_images_end_the_run_before_the_first_step(world, tmp_path):
    import shutil
    copy = tmp_path / "train"
    shutil.copytree(world / "train", copy)
    bad = sorted((copy / "images").glob("*.png"))[7]
    bad.write_bytes(b"\x89PNG broken")
    out = tmp_path / "run"
    args = train_args(world, out)
    args[args.index("--train-annotations") + 1] = str(copy / "captions.json")
    args[args.index("--train-images") + 1] = str(copy / "images")
    proc = run(args)
    assert_one_line_error(proc, "1 of ", "do not decode", bad.name, "from the COCO file")
    assert not (out / "last.safetensors").exists()


def test_a_missing_scorer_stops_the_run_before_anything_loads(world, tmp_path, monkeypatch):
    """pycocoevalcap is needed after the first epoch; its absence is said before any training, not after it."""
    import sys
    from catr.config import CaptionTrainConfig
    from catr.train import fit
    from hw3io import UserError
    monkeypatch.setitem(sys.modules, "pycocoevalcap", None)  # import pycocoevalcap... now fails
    out = tmp_path / "run"
    cfg = CaptionTrainConfig(preset="tiny", train_annotations=str(world / "train" / "captions.json"),
                             train_images=str(world / "train" / "images"),
                             val_annotations=str(world / "val" / "captions.json"),
                             val_images=str(world / "val" / "images"), vocab=str(world / "vocab.txt"),
                             output_dir=str(out), workers=0, caption_eval_images=4)
    with pytest.raises(UserError, match="pycocoevalcap.*--caption-eval-images 0"):
        fit(cfg)
    assert not out.exists()

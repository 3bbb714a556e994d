"""Pretrain the tiny preset's ConvNet by naming boxed objects: what ImageNet is to official CATR's ResNet.

From random weights the tiny CATR learns colours from captions but barely shapes: a caption loss reaches a shape
feature only through a cross-attention that has already found the object, and the attention has no reason to find
it while the features carry no shape (on 2,000 caption-world scenes the val loss stalled near 0.35 and linear
probes found shape in the backbone at 0.51). A backbone that already tells objects apart breaks that circle.

``python3 -m catr.pretrain --images DIR --objects objects.json --output convnet.safetensors`` trains the ConvNet
to name each object from its features averaged over its box (each of the object's words, "red" and "circle",
is a yes/no label; ``objects.json`` as ``synth.captionworld`` writes it), then saves the ConvNet alone; ``p2_train.py
--backbone-weights`` starts from it. Only the training split's boxes are used; captions and attention are
learned by ``p2_train.py`` as before.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

from hw3io import brief, run_cli

FORMAT = "catr-convnet"


def read_objects(objects_path, image_dir, max_dim: int):
    """(images (3, H, W) resized and normalised as CATR does, per image [(box in the resized image's pixels,
    word indices)], words), with one-line errors for a bad file or a missing image."""
    from hw3io import UserError, load_rgb
    from .preprocess import preprocess
    objects_path, image_dir = Path(objects_path), Path(image_dir)
    try:
        objects = json.loads(objects_path.read_text())
        names = sorted({w for objs in objects.values() for o in objs for w in o["words"]})
    except FileNotFoundError:
        raise UserError(f"objects file not found: {objects_path}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"not an objects.json (file name -> [{{words, box}}]): {objects_path} "
                        f"({type(e).__name__}: {e})") from None
    if not names:
        raise UserError(f"{objects_path}: no objects")
    missing = [f for f in objects if not (image_dir / f).is_file()]
    if missing:
        raise UserError(f"{objects_path}: {len(missing)} image(s) missing from {image_dir}, e.g. {missing[0]}")
    index = {n: k for k, n in enumerate(names)}
    images, regions = [], []
    for name, objs in objects.items():
        img = load_rgb(image_dir / name)
        small, x, _ = preprocess(img, max_dim)
        s = small.width / img.width
        images.append(x[0])
        regions.append([([v * s for v in o["box"]], [index[w] for w in o["words"]]) for o in objs])
    return images, regions, names


def box_features(features, boxes, stride: int):
    """Mean feature (C,) inside each box [x, y, w, h] (resized-image pixels) of a (C, H', W') map."""
    import torch
    out = []
    for x, y, w, h in boxes:
        c0, r0 = int(x // stride), int(y // stride)
        c1, r1 = max(c0 + 1, math.ceil((x + w) / stride)), max(r0 + 1, math.ceil((y + h) / stride))
        out.append(features[:, r0:r1, c0:c1].mean((1, 2)))
    return torch.stack(out)


def size_batches(images, batch_size: int, generator):
    """Indices in batches of one image size (nothing padded), shuffled within sizes and across batches."""
    import torch
    by_size = {}
    for i in torch.randperm(len(images), generator=generator).tolist():
        by_size.setdefault(tuple(images[i].shape), []).append(i)
    batches = [idx[k:k + batch_size] for idx in by_size.values() for k in range(0, len(idx), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def pretrain(images, regions, num_words: int, *, epochs=2, batch_size=8, lr=1e-3, seed=0, device="cpu"):
    """Train a ConvNet and a linear multi-label classifier (one logit per word) over box-averaged features. Words
    rather than word pairs as classes: 24 colour-shape classes took longer to learn shapes than 10 words.
    Returns (ConvNet, per epoch {"loss": mean loss per object, "accuracy": fraction of objects whose words were
    all named, and no other}), both over the training objects as they were seen."""
    import torch
    import torch.nn.functional as F
    from hw3io import progress
    from .backbone import ConvNet
    torch.manual_seed(seed)
    net = ConvNet().to(device)
    head = torch.nn.Linear(net.num_channels, num_words).to(device)
    opt = torch.optim.AdamW([*net.parameters(), *head.parameters()], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        net.train()
        correct = count = 0
        loss_sum = 0.0
        bar = progress(size_batches(images, batch_size, generator), desc=f"pretrain epoch {epoch}", leave=False)
        for idx in bar:
            features = net.body(torch.stack([images[i] for i in idx]).to(device))
            feats = torch.cat([box_features(f, [b for b, _ in regions[i]], net.stride)
                               for f, i in zip(features, idx)])
            labels = torch.zeros(len(feats), num_words, device=device)
            for row, words in zip(labels, [w for i in idx for _, w in regions[i]]):
                row[words] = 1
            logits = head(feats)
            loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / len(feats)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            correct += int(((logits > 0) == (labels > 0)).all(1).sum())
            count += len(labels)
            loss_sum += loss.item() * len(labels)
        history.append({"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1)})
        print(f"pretrain epoch {epoch}: loss {history[-1]['loss']:.4f}, object accuracy "
              f"{history[-1]['accuracy']:.3f} ({count} objects)")
    return net.eval(), history


def save_convnet(path, net, meta: dict) -> None:
    from hw3io import save_tensors
    save_tensors(path, net.state_dict(), {"format": FORMAT, "meta": json.dumps(meta)})


def load_convnet(backbone, path) -> None:
    """Load a ``save_convnet`` file into a ConvNet strictly, with one-line errors."""
    from hw3io import UserError, read_tensors
    state, meta = read_tensors(path, "backbone weights file")
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a ConvNet written by python3 -m catr.pretrain")
    try:
        backbone.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise UserError(f"{path} does not match the ConvNet: {brief(e, 200)}") from None


def get_args_parser():
    from .config import ARCHITECTURES
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="folder of the training scenes")
    p.add_argument("--objects", required=True, help="objects.json of those scenes (synth.captionworld writes it)")
    p.add_argument("--output", required=True, help="the ConvNet's weights (.safetensors)")
    p.add_argument("--epochs", type=int, default=2, help="passes over the scenes (default: 2)")
    p.add_argument("--batch-size", type=int, default=8, help="scenes per step (default: 8)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    p.add_argument("--max-dim", type=int, default=ARCHITECTURES["tiny"]["max_dim"],
                   help="longer image side, as the caption model will see it (default: the tiny preset's, "
                        "%(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    return p


def main(argv=None):
    a = get_args_parser().parse_args(argv)
    from hw3io import pick_device
    t0 = time.time()
    images, regions, names = read_objects(a.objects, a.images, a.max_dim)
    net, history = pretrain(images, regions, len(names), epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                            seed=a.seed, device=pick_device(a.device))
    seconds = time.time() - t0
    save_convnet(a.output, net, {"words": names, "history": history, "seconds": seconds, "max_dim": a.max_dim,
                                 "images": len(images)})
    print(f"wrote {a.output} ({len(images)} scenes, {len(names)} words, {seconds:.0f}s); train CATR on it "
          f"with p2_train.py --preset tiny --backbone-weights {a.output}")


if __name__ == "__main__":
    sys.exit(run_cli(main))

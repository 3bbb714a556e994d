"""``fit(cfg)``: train or fine-tune CATR on a COCO-format caption set, as official CATR's ``main.py`` does.

Teacher forcing under the decoder's causal mask: the model reads [CLS] w1 .. wn and predicts w1 .. wn [SEP]; the
loss ignores padding. AdamW with its own learning rate for the backbone (DETR trains only layer2-4 of a ResNet).
The run goes through the shared fit loop (``training.loop``), as Problem 1's does: torchrun DDP, ``--amp``,
``--accum-steps``, SIGTERM save and ``--resume auto`` exactly where a run stopped. Every epoch writes
``checkpoint.pth``, which ``hw3_2.sh`` reads as it is (weights + ``catr_config``), and a copy of the vocabulary beside
it.
"""
import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from hw3io import UserError, atomic_path, atomic_write_text, ensure_writable_dir, load_rgb, progress
from training import distributed as D
from training.images import check_images
from training.loop import StopFlag, Task, check_config, fit as fit_loop, launch
from training.schedule import StepSchedule
from training.seeding import make_loader, seed_everything
from .backbone import Backbone, load_imagenet_weights
from .caption import build_model, checkpoint_config, load_strictly
from .config import ARCHITECTURES, CaptionTrainConfig, CATRConfig
from .data import CaptionDataset, collate, load_coco_captions
from .decode import greedy_decode_batch
from .hub import CHECKPOINT_URLS, load_weights
from .metrics import caption_metrics, exact_match, require_scorers, word_accuracy
from .pretrain import load_convnet
from .preprocess import preprocess
from .tokenizer import load_tokenizer

LOG_FIELDS = ("epoch", "train_loss", "val_loss", "val_exact", "val_word_acc", "val_bleu4", "val_cider", "lr")


def caption_loss(pad_id: int):
    """``loss_fn`` for caption batches: mean cross-entropy over the non-padding target tokens."""
    def loss_fn(model, batch, device):
        images, mask, ids, pad = (t.to(device, non_blocking=True) for t in batch)
        logits = model(images, mask, ids[:, :-1], pad[:, :-1])
        target = ids[:, 1:]
        loss = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=pad_id)
        return loss, int((target != pad_id).sum())
    return loss_fn


def initial_model(cfg: CaptionTrainConfig, vocab_size: int, pad_id: int):
    """(model, config): the preset's architecture (a ResNet backbone from ImageNet, the rest at random), or
    ``--init``'s weights and architecture (loaded strictly; the vocabulary must be the one they were trained
    with)."""
    if cfg.init is None:
        config = CATRConfig(**{**ARCHITECTURES[cfg.preset], "vocab_size": vocab_size, "pad_token_id": pad_id})
        model = build_model(config)
        backbone = model.backbone[0]
        if isinstance(backbone, Backbone):  # a ResNet starts from ImageNet, as official CATR's does
            if cfg.backbone_weights == "none":
                print(f"warning: --backbone-weights none: the {config.backbone} starts at random, not from ImageNet; "
                      "expect poor captions from any training budget short of ImageNet's own (for trying the "
                      "pipeline offline)")
            elif cfg.backbone_weights:
                raise UserError("--backbone-weights is for the tiny preset's ConvNet (or 'none'); a ResNet starts "
                                "from torchvision's ImageNet weights")
            else:
                load_imagenet_weights(backbone, config.backbone)
        elif cfg.backbone_weights == "none":
            pass
        elif cfg.backbone_weights:
            load_convnet(backbone, cfg.backbone_weights)
        else:
            print("warning: the ConvNet starts from random weights and will learn colours but hardly shapes; "
                  "pretrain it with python3 -m catr.pretrain and pass --backbone-weights")
        return model, config
    if cfg.backbone_weights:
        raise UserError("--init and --backbone-weights both set the backbone: give one")
    ckpt = load_weights(None if cfg.init in CHECKPOINT_URLS else cfg.init, version=cfg.init)
    config = checkpoint_config(ckpt)
    if config.vocab_size != vocab_size:
        raise UserError(f"--init {cfg.init} has a {config.vocab_size}-token vocabulary, --vocab {vocab_size} tokens")
    model = build_model(config)
    load_strictly(model, ckpt["model"], f"--init {cfg.init}")
    return model, config


def build_optimizer(model, cfg: CaptionTrainConfig):
    """Official CATR: AdamW over two groups, the backbone at ``lr_backbone``. As in DETR, a ResNet backbone
    trains only layer2-4 (none of it when lr_backbone is 0); our small ConvNet trains whole."""
    backbone = model.backbone[0]
    for name, p in backbone.named_parameters():
        frozen = isinstance(backbone, Backbone) and not any(f"layer{k}" in name for k in (2, 3, 4))
        p.requires_grad_(cfg.lr_backbone > 0 and not frozen)
    groups = [{"params": [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad],
               "lr": cfg.lr},
              {"params": [p for p in backbone.parameters() if p.requires_grad], "lr": cfg.lr_backbone}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_schedule(optimizer, cfg: CaptionTrainConfig, steps_per_epoch: int) -> StepSchedule:
    """The lr as a function of the optimizer step (what exact resume needs), per group."""
    return StepSchedule(optimizer, total=cfg.epochs * steps_per_epoch, warmup=int(cfg.warmup_epochs * steps_per_epoch),
                        kind=cfg.schedule, min_factor=0.01, drop_every=max(cfg.lr_drop, 1) * steps_per_epoch)


@torch.no_grad()
def evaluate(model, loader, data, tokenizer, loss_fn, info: D.DistInfo, caption_images: int) -> dict:
    """Teacher-forced val loss (fp32), then greedy captions of the first ``caption_images`` val images against all
    their references: exact match and per-word accuracy, and BLEU-4 and CIDEr-D over them all (``catr.metrics``
    without Java: its word split). Under torchrun each rank takes its share of both."""
    model.eval()
    loss_sum, count = 0.0, 0
    for batch in progress(loader, desc="val", leave=False, disable=not info.is_main):
        loss, n = loss_fn(model, batch, info.device)
        loss_sum, count = loss_sum + loss.item() * n, count + n
    refs, texts = {}, {}
    for k, ids, caption in data.samples:
        refs.setdefault(k, []).append(ids[1:-1])  # [CLS] ... [SEP] (kept when cut)
        texts.setdefault(k, []).append(caption)
    exact, words, captions = 0.0, 0.0, {}
    max_len = model.transformer.embeddings.position_embeddings.num_embeddings
    by_size = {}  # images of one size decode together, unpadded (see greedy_decode_batch)
    for k in list(refs)[:caption_images][info.rank::info.world_size]:
        _, x, mask = preprocess(load_rgb(data.image_dir / data.files[k]), model.config.max_dim)
        by_size.setdefault(tuple(x.shape), []).append((k, x, mask))
    for group in progress(list(by_size.values()), desc="caption val", leave=False, disable=not info.is_main):
        for i in range(0, len(group), 64):
            ks, xs, masks = zip(*group[i:i + 64])
            decoded = greedy_decode_batch(model, torch.cat(xs).to(info.device), torch.cat(masks).to(info.device),
                                          tokenizer.start_id, tokenizer.end_id, max_len)
            for k, (ids, _) in zip(ks, decoded):
                exact += exact_match(ids, refs[k])
                words += word_accuracy(ids, refs[k])
                captions[k] = tokenizer.decode(ids)
    loss_sum, count, exact, words, captioned = D.all_reduce_sum(
        [loss_sum, count, exact, words, sum(len(g) for g in by_size.values())], info)
    captions = {k: c for part in D.all_gather_objects(captions, info) for k, c in part.items()}
    scores = caption_metrics(captions, {k: texts[k] for k in captions}, java=False) if captions else {}
    n = max(captioned, 1)
    return {"val_loss": loss_sum / max(count, 1), "val_exact": exact / n, "val_word_acc": words / n,
            "val_bleu4": scores.get("BLEU-4", 0.0), "val_cider": scores.get("CIDEr-D", 0.0),
            "captioned": int(captioned)}


def save_caption_checkpoint(path, model, config: CATRConfig, **extra) -> None:
    """The file hw3_2.sh reads: ``model`` (the official key layout) plus ``catr_config``; plain tensors and
    Python values only, so ``torch.load(weights_only=True)`` reads it."""
    with atomic_path(path) as tmp:
        torch.save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "catr_config": config.to_dict(), **extra}, tmp)


def fit(cfg: CaptionTrainConfig) -> dict:
    cfg = cfg.resolved()
    for flag in ("train_annotations", "train_images", "val_annotations", "val_images"):
        if getattr(cfg, flag) is None:
            raise UserError(f"--{flag.replace('_', '-')} is required")
    check_config(cfg)
    if cfg.caption_eval_images > 0:  # checked now, not after the first epoch's training
        require_scorers(f"p2_train.py scores {cfg.caption_eval_images} val captions after every epoch "
                        "(--caption-eval-images 0 trains without)")
    return launch(cfg, _fit)


def _fit(cfg: CaptionTrainConfig, info: D.DistInfo, stop: StopFlag) -> dict:
    out = Path(cfg.output_dir)
    if info.is_main:
        ensure_writable_dir(out)
    tokenizer = load_tokenizer(cfg.vocab)
    train_set = load_coco_captions(cfg.train_annotations, cfg.train_images, tokenizer, cfg.max_length)
    val_set = load_coco_captions(cfg.val_annotations, cfg.val_images, tokenizer, cfg.max_length)
    seed_everything(cfg.seed)  # same on every rank: identical initial weights
    model, config = initial_model(cfg, tokenizer.vocab_size, tokenizer.pad_id)
    if cfg.max_length > config.max_position_embeddings:
        raise UserError(f"--max-length {cfg.max_length} exceeds the model's {config.max_position_embeddings} "
                        "positions")
    model.to(info.device)

    train_ds = CaptionDataset(train_set, config.max_dim, cfg.augment, cfg.seed)
    val_ds = CaptionDataset(val_set, config.max_dim)
    collate_fn = functools.partial(collate, pad_id=tokenizer.pad_id)  # picklable, for worker processes
    val_loader = make_loader(Subset(val_ds, D.shard_indices(len(val_ds), info)), batch_size=cfg.batch_size,
                             num_workers=cfg.workers, collate_fn=collate_fn)
    optimizer = build_optimizer(model, cfg)
    loss_fn = caption_loss(tokenizer.pad_id)
    if info.is_main and Path(tokenizer.vocab_file).resolve() != (out / "vocab.txt").resolve():  # hw3_2.sh's CATR_VOCAB
        atomic_write_text(out / "vocab.txt", Path(tokenizer.vocab_file).read_text(encoding="utf-8"))

    def end_epoch(epoch, row, improved):
        save_caption_checkpoint(out / "checkpoint.pth", model, config, epoch=epoch,
                                val={k: row[k] for k in LOG_FIELDS}, train_config=cfg.to_dict())
        print(f"epoch {epoch}: train_loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} exact "
              f"{row['val_exact']:.3f} word_acc {row['val_word_acc']:.3f} BLEU-4 {row['val_bleu4']:.3f} CIDEr-D "
              f"{row['val_cider']:.3f} ({row['captioned']} images captioned, "
              f"{row['seconds']:.0f}s)", flush=True)

    def end_run(progress):
        print(f"checkpoint {out / 'checkpoint.pth'} ({progress['train_seconds']:.0f}s of training); caption with "
              f"CATR_CHECKPOINT={out / 'checkpoint.pth'} CATR_VOCAB={out / 'vocab.txt'} bash hw3_2.sh DIR OUT")
        return {"final": progress["history"][-1] if progress["history"] else None, "catr_config": config.to_dict()}

    n_params = sum(p.numel() for p in model.parameters())
    task = Task(model=model, optimizer=optimizer, schedule=lambda spe: build_schedule(optimizer, cfg, spe),
                train_set=train_ds, loss_fn=loss_fn, collate_fn=collate_fn,
                evaluate=lambda: evaluate(model, val_loader, val_set, tokenizer, loss_fn, info,
                                          cfg.caption_eval_images),
                log_fields=LOG_FIELDS, end_epoch=end_epoch, end_run=end_run,
                identity={"preset": cfg.preset, "init": cfg.init, "max_length": cfg.max_length,
                          "train_annotations": str(Path(cfg.train_annotations).resolve()),
                          "val_annotations": str(Path(cfg.val_annotations).resolve())},
                check_data=lambda: check_images(
                    [train_set.image_dir / f for f in train_set.files] + [val_set.image_dir / f for f in val_set.files],
                    workers=cfg.workers, info=info,
                    skip_hint="Remove them and their captions from the COCO file to train without them."),
                describe=f"CATR ({cfg.preset}{', init ' + cfg.init if cfg.init else ''}: {config.backbone}, "
                         f"{config.enc_layers}+{config.dec_layers} layers, {n_params / 1e6:.2f}M parameters; "
                         f"{len(train_set.files)} images, {len(val_ds)} val captions; lr {cfg.lr:g}, backbone "
                         f"{cfg.lr_backbone:g})")
    progress = fit_loop(cfg, info, task, stop)
    return {"history": progress["history"], "train_seconds": progress["train_seconds"], "output_dir": str(out)}

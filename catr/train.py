"""``fit(cfg)``: train or fine-tune CATR on a COCO-format caption set, as official CATR's ``main.py`` does.

Teacher forcing under the decoder's causal mask: the model reads [CLS] w1 .. wn and predicts w1 .. wn [SEP]; the
loss ignores padding. AdamW with its own learning rate for the backbone (DETR trains only layer2-4 of a ResNet).
The machinery is Problem 1's: its step loop (``vitpet.engine``), resumable state file, SIGTERM save and log, so
``--resume auto`` continues exactly where a run stopped. Every epoch writes ``checkpoint.pth``, which
``hw3_2.sh`` reads as it is (weights + ``catr_config``), and a copy of the vocabulary beside it.
"""
import dataclasses
import functools
import json
import signal
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.scheduler import CosineLRScheduler, StepLRScheduler

from hw3io import (UserError, atomic_path, atomic_write_text, default_workers, ensure_writable_dir, load_rgb,
                   pick_device, progress)
from vitpet import distributed as D
from vitpet.engine import train_one_epoch
from vitpet.model import library_versions
from vitpet.state import apply_state, capture_rng, load_state, save_state
from vitpet.train import StopFlag, make_loader, resume_path, seed_everything, write_log
from .backbone import Backbone, load_imagenet_weights
from .caption import build_model, checkpoint_config
from .config import ARCHITECTURES, CaptionTrainConfig, CATRConfig
from .data import CaptionDataset, collate, load_coco_captions
from .decode import greedy_decode_batch
from .hub import CHECKPOINT_URLS, load_weights
from .metrics import exact_match, word_accuracy
from .pretrain import load_convnet
from .preprocess import preprocess
from .tokenizer import load_tokenizer

LOG_FIELDS = ("epoch", "train_loss", "val_loss", "val_exact", "val_word_acc", "lr")


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
            if cfg.backbone_weights:
                raise UserError("--backbone-weights is for the tiny preset's ConvNet; a ResNet starts from "
                                "torchvision's ImageNet weights")
            load_imagenet_weights(backbone, config.backbone)
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
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as e:
        raise UserError(f"--init {cfg.init} does not match the CATR architecture: {str(e).splitlines()[0][:200]}") \
            from None
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


def build_scheduler(optimizer, cfg: CaptionTrainConfig, steps_per_epoch: int):
    """The lr as a function of the optimizer step (what exact resume needs), per group."""
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    if cfg.schedule == "step":
        return StepLRScheduler(optimizer, decay_t=max(cfg.lr_drop, 1) * steps_per_epoch, decay_rate=0.1,
                               warmup_t=warmup, warmup_lr_init=cfg.lr * 0.01, t_in_epochs=False)
    return CosineLRScheduler(optimizer, t_initial=cfg.epochs * steps_per_epoch, lr_min=cfg.lr * 0.01,
                             warmup_t=warmup, warmup_lr_init=cfg.lr * 0.01, t_in_epochs=False)


@torch.no_grad()
def evaluate(model, loader, data, tokenizer, loss_fn, device, caption_images: int) -> dict:
    """Teacher-forced val loss, then greedy captions of the first ``caption_images`` val images against all their
    references: exact match and per-word accuracy."""
    model.eval()
    loss_sum, count = 0.0, 0
    for batch in progress(loader, desc="val", leave=False):
        loss, n = loss_fn(model, batch, device)
        loss_sum, count = loss_sum + loss.item() * n, count + n
    refs = {}
    for k, ids, _ in data.samples:
        refs.setdefault(k, []).append(ids[1:-1])  # [CLS] ... [SEP] (kept when cut)
    exact, words = [], []
    max_len = model.transformer.embeddings.position_embeddings.num_embeddings
    by_size = {}  # images of one size decode together, unpadded (see greedy_decode_batch)
    for k in list(refs)[:caption_images]:
        _, x, mask = preprocess(load_rgb(data.image_dir / data.files[k]), model.config.max_dim)
        by_size.setdefault(tuple(x.shape), []).append((k, x, mask))
    for group in progress(list(by_size.values()), desc="caption val", leave=False):
        for i in range(0, len(group), 64):
            ks, xs, masks = zip(*group[i:i + 64])
            decoded = greedy_decode_batch(model, torch.cat(xs).to(device), torch.cat(masks).to(device),
                                          tokenizer.start_id, tokenizer.end_id, max_len)
            for k, (ids, _) in zip(ks, decoded):
                exact.append(exact_match(ids, refs[k]))
                words.append(word_accuracy(ids, refs[k]))
    n = max(len(exact), 1)
    return {"loss": loss_sum / max(count, 1), "exact": sum(exact) / n, "word_acc": sum(words) / n,
            "captioned": len(exact)}


def save_caption_checkpoint(path, model, config: CATRConfig, **extra) -> None:
    """The file hw3_2.sh reads: ``model`` (the official key layout) plus ``catr_config``; plain tensors and
    Python values only, so ``torch.load(weights_only=True)`` reads it."""
    with atomic_path(path) as tmp:
        torch.save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "catr_config": config.to_dict(), **extra}, tmp)


def fit(cfg: CaptionTrainConfig) -> dict:
    cfg = cfg.resolved()
    if cfg.workers is None:
        cfg = dataclasses.replace(cfg, workers=default_workers())
    for flag in ("train_annotations", "train_images", "val_annotations", "val_images"):
        if getattr(cfg, flag) is None:
            raise UserError(f"--{flag.replace('_', '-')} is required")
    with StopFlag() as stop:
        return _fit(cfg, stop)


def _fit(cfg: CaptionTrainConfig, stop: StopFlag) -> dict:
    info = D.DistInfo(device=pick_device(cfg.device))
    device = info.device
    out = ensure_writable_dir(cfg.output_dir)
    tokenizer = load_tokenizer(cfg.vocab)
    train_set = load_coco_captions(cfg.train_annotations, cfg.train_images, tokenizer, cfg.max_length)
    val_set = load_coco_captions(cfg.val_annotations, cfg.val_images, tokenizer, cfg.max_length)
    seed_everything(cfg.seed)
    model, config = initial_model(cfg, tokenizer.vocab_size, tokenizer.pad_id)
    if cfg.max_length > config.max_position_embeddings:
        raise UserError(f"--max-length {cfg.max_length} exceeds the model's {config.max_position_embeddings} "
                        "positions")
    model.to(device)

    train_ds = CaptionDataset(train_set, config.max_dim, cfg.augment, cfg.seed)
    val_ds = CaptionDataset(val_set, config.max_dim)
    sampler = D.ResumableSampler(train_ds, num_replicas=1, rank=0, shuffle=True, seed=cfg.seed, drop_last=True)
    steps_per_epoch = len(train_ds) // cfg.batch_size
    if steps_per_epoch == 0:
        raise UserError(f"{len(train_ds)} training captions are fewer than one batch of {cfg.batch_size}")
    collate_fn = functools.partial(collate, pad_id=tokenizer.pad_id)  # picklable, for worker processes
    val_loader = make_loader(val_ds, batch_size=cfg.batch_size, num_workers=cfg.workers, collate_fn=collate_fn)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    loss_fn = caption_loss(tokenizer.pad_id)

    state = {"epoch": 0, "step": 0, "history": [], "loss_sum": 0.0, "count": 0, "train_seconds": 0.0}
    resume = resume_path(cfg.resume, out)
    if resume is not None:
        state = apply_state(load_state(resume), model=model, optimizer=optimizer, scaler=scaler, rank=0)
        print(f"resumed from {resume} at epoch {state['epoch']} step {state['step']}")
    scheduler.step_update(num_updates=state["epoch"] * steps_per_epoch + state["step"])
    if Path(tokenizer.vocab_file).resolve() != (out / "vocab.txt").resolve():  # hw3_2.sh's CATR_VOCAB
        atomic_write_text(out / "vocab.txt", Path(tokenizer.vocab_file).read_text(encoding="utf-8"))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"training CATR ({cfg.preset}{', init ' + cfg.init if cfg.init else ''}: {config.backbone}, "
          f"{config.enc_layers}+{config.dec_layers} layers, {n_params / 1e6:.2f}M parameters) on {device}: "
          f"{len(train_ds)} train captions of {len(train_set.files)} images, {len(val_ds)} val captions, batch "
          f"{cfg.batch_size}, lr {cfg.lr:g} (backbone {cfg.lr_backbone:g}), {steps_per_epoch} steps/epoch")

    clock = {"mark": time.time()}

    def save_last():
        now = time.time()
        state["train_seconds"] += now - clock["mark"]
        clock["mark"] = now
        save_state(out / "last.safetensors", model=model, optimizer=optimizer, scaler=scaler, progress=state,
                   rngs=[capture_rng()], config=cfg.to_dict())

    def on_step(step, loss_sum, count):
        state["loss_sum"] += loss_sum
        state["count"] += count
        state["step"] = step
        if (cfg.save_every and step % cfg.save_every == 0 and step < steps_per_epoch) or stop():
            save_last()

    while state["epoch"] < cfg.epochs:
        epoch, t0 = state["epoch"], time.time()
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        sampler.set_start(state["step"] * cfg.batch_size)
        loader = make_loader(train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                             drop_last=True, collate_fn=collate_fn)
        train_one_epoch(model, loader, optimizer, scheduler, scaler, info=info, epoch=epoch,
                        step_in_epoch=state["step"], steps_per_epoch=steps_per_epoch, accum_steps=1, loss_fn=loss_fn,
                        clip_grad=cfg.clip_grad or None, amp_dtype=None, on_step=on_step, should_stop=stop)
        if stop():
            print(f"stopped by signal {stop.signum}; state saved to {out / 'last.safetensors'}, "
                  "continue with --resume auto")
            raise SystemExit(128 + (stop.signum or signal.SIGTERM))
        val = evaluate(model, val_loader, val_set, tokenizer, loss_fn, device, cfg.caption_eval_images)
        row = {"epoch": epoch, "train_loss": state["loss_sum"] / max(state["count"], 1), "val_loss": val["loss"],
               "val_exact": val["exact"], "val_word_acc": val["word_acc"], "lr": optimizer.param_groups[0]["lr"]}
        state["history"].append(row)
        state.update(epoch=epoch + 1, step=0, loss_sum=0.0, count=0)
        write_log(out / "log.csv", state["history"], LOG_FIELDS)
        save_caption_checkpoint(out / "checkpoint.pth", model, config, epoch=epoch, val=row,
                                train_config=cfg.to_dict())
        print(f"epoch {epoch}: train_loss {row['train_loss']:.4f} val_loss {val['loss']:.4f} exact "
              f"{val['exact']:.3f} word_acc {val['word_acc']:.3f} ({val['captioned']} images captioned, "
              f"{time.time() - t0:.0f}s)")
        save_last()

    atomic_write_text(out / "run.json", json.dumps({
        "train_seconds": state["train_seconds"], "device": D.device_name(info),
        "final": state["history"][-1] if state["history"] else None,
        "config": cfg.to_dict(), "catr_config": config.to_dict(), "versions": library_versions()}, indent=2) + "\n")
    print(f"checkpoint {out / 'checkpoint.pth'} ({state['train_seconds']:.0f}s of training); caption with "
          f"CATR_CHECKPOINT={out / 'checkpoint.pth'} CATR_VOCAB={out / 'vocab.txt'} bash hw3_2.sh DIR OUT")
    return {"history": state["history"], "train_seconds": state["train_seconds"], "output_dir": str(out)}


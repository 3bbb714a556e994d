"""The two loops: ``train_one_epoch`` (accumulation, AMP, clipping, the non-finite guard, per-step lr) and
``evaluate`` for classification (always fp32: the number a grader reproduces)."""
import contextlib
import math

import torch
import torch.nn.functional as F

from hw3io import progress
from .distributed import DistInfo, all_reduce_sum
from .precision import autocast


def classification_loss(label_smoothing: float = 0.0):
    """``loss_fn`` for image classification batches (x, y, index)."""
    def loss_fn(model, batch, device):
        x, y, _ = batch
        logits = model(x.to(device, non_blocking=True))
        return F.cross_entropy(logits.float(), y.to(device, non_blocking=True), label_smoothing=label_smoothing), len(y)
    return loss_fn


def grad_norm(model, clip_grad: float | None) -> torch.Tensor:
    """The gradients' total norm, clipped to ``clip_grad`` when given (the norm is that before clipping)."""
    if clip_grad is not None:
        return torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    return torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])


def train_one_epoch(model, loader, optimizer, schedule, scaler, *, info: DistInfo, epoch: int, step_in_epoch: int,
                    steps_per_epoch: int, accum_steps: int, loss_fn, clip_grad, amp_dtype, on_step=None,
                    should_stop=None):
    """Run optimizer steps ``step_in_epoch .. steps_per_epoch-1`` of ``epoch``. Shared by both problems:
    ``loss_fn(model, batch, device)`` returns (mean loss, number of samples it averages over).

    ``on_step(step_in_epoch, loss_sum, count)`` is called after every optimizer step with the loss summed over
    this rank's samples since the previous call; it may save state. ``should_stop()`` ends the epoch early
    (pre-emption). Returns the number of the next step to run.
    """
    model.train()
    device = info.device
    with progress(total=steps_per_epoch, initial=step_in_epoch, desc=f"epoch {epoch}", disable=not info.is_main,
                  leave=False) as bar:  # closed before any error line is printed
        batches = iter(loader)
        step = step_in_epoch
        while step < steps_per_epoch:
            loss_sum, count = 0.0, 0
            for micro in range(accum_steps):
                batch = next(batches)
                # Only the last micro-batch all-reduces gradients under DDP.
                sync = micro == accum_steps - 1 or not hasattr(model, "no_sync")
                with (contextlib.nullcontext() if sync else model.no_sync()), autocast(device, amp_dtype):
                    loss, n = loss_fn(model, batch, device)
                scaler.scale(loss / accum_steps).backward()
                loss_sum += loss.item() * n
                count += n
            # Before the step, so one bad batch never reaches the weights; under DDP every rank must agree, since
            # the gradients (already all-reduced) are poisoned on all of them.
            if all_reduce_sum([float(not math.isfinite(loss_sum))], info)[0]:
                optimizer.zero_grad(set_to_none=True)
                raise FloatingPointError(f"training loss is not finite at epoch {epoch} step {step + 1} (weights "
                                         "left as they were before this step); lower --lr")
            scaler.unscale_(optimizer)
            norm = grad_norm(model, clip_grad)
            # A finite loss can still give inf/NaN gradients (bf16 or fp32 overflow in backward). With fp16 the
            # GradScaler skips such a step and lowers its scale, as designed; without one nothing would stop it.
            if not scaler.is_enabled() and not torch.isfinite(norm):
                optimizer.zero_grad(set_to_none=True)
                raise FloatingPointError(f"gradient norm is {norm.item()} at epoch {epoch} step {step + 1} (weights "
                                         "left as they were before this step); lower --lr or use --amp off")
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            schedule.set_step(epoch * steps_per_epoch + step)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / count:.3f}", lr=f"{schedule.lr:.2e}", refresh=False)
            if on_step is not None:
                on_step(step, loss_sum, count)
            if should_stop is not None and should_stop():
                break
    return step


@torch.no_grad()
def evaluate(model, loader, *, info: DistInfo, desc="val"):
    """Loss, accuracy and (rank-local) predictions over a sharded loader, in fp32 whatever the training precision:
    the val accuracy that picks the best checkpoint is the one ``hw3_1.sh`` reproduces. Metrics are summed over
    ranks."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    preds, indices = [], []
    for x, y, idx in progress(loader, desc=desc, disable=not info.is_main, leave=False):
        x, y = x.to(info.device), y.to(info.device)
        logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        p = logits.argmax(1)
        correct += (p == y).sum().item()
        count += len(y)
        preds.append(p.cpu())
        indices.append(idx)
    loss_sum, correct, count = all_reduce_sum([loss_sum, correct, count], info)
    return {"loss": loss_sum / max(count, 1), "acc": correct / max(count, 1), "count": int(count),
            "preds": torch.cat(preds) if preds else torch.empty(0, dtype=torch.long),
            "indices": torch.cat(indices) if indices else torch.empty(0, dtype=torch.long)}

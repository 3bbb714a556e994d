"""The learning rate as a pure function of the optimizer step, for every param group: what exact resume needs (the
state file carries the step, never a scheduler's history). timm's schedulers would do, but ``catr`` must not import
timm; this is the few lines both problems use."""
import math


class StepSchedule:
    """Sets each group's lr for the step about to run: its base lr x ``lr_scale`` (timm's layer decay, when the
    group has one) x ``factor(step)``.

    ``factor`` warms up linearly from ``warmup_factor`` over ``warmup`` steps, then follows ``kind``: "cosine" (from
    1 at step 0 to ``min_factor`` at ``total``, computed over the whole run as timm's ``CosineLRScheduler`` does) or
    "step" (x0.1 every ``drop_every`` steps, official CATR's ``StepLR``).
    """

    def __init__(self, optimizer, *, total: int, warmup: int = 0, kind: str = "cosine", min_factor: float = 0.0,
                 drop_every: int = 0, warmup_factor: float = 0.01):
        if kind not in ("cosine", "step"):
            raise ValueError(f"unknown schedule {kind!r}")
        self.optimizer = optimizer
        # "initial_lr" as torch's schedulers keep it: the group's own lr before any schedule touched it
        self.base = [g.setdefault("initial_lr", g["lr"]) * g.get("lr_scale", 1.0) for g in optimizer.param_groups]
        self.total, self.warmup, self.kind = total, warmup, kind
        self.min_factor, self.drop_every, self.warmup_factor = min_factor, drop_every, warmup_factor

    def factor(self, step: int) -> float:
        if step < self.warmup:
            return self.warmup_factor + (1 - self.warmup_factor) * step / self.warmup
        if self.kind == "step":
            return 0.1 ** (step // self.drop_every) if self.drop_every > 0 else 1.0
        t = min(step / max(self.total, 1), 1.0)
        return self.min_factor + 0.5 * (1 - self.min_factor) * (1 + math.cos(math.pi * t))

    def set_step(self, step: int) -> None:
        f = self.factor(step)
        for group, base in zip(self.optimizer.param_groups, self.base):
            group["lr"] = base * f

    @property
    def peak(self) -> float:
        """The nominal peak: the largest group's base lr, which warmup climbs towards (the run's start line)."""
        return max(self.base)

    @property
    def lr(self) -> float:
        """The lr in use now, the largest group's: with layer decay, group 0 holds the smallest, the embeddings'."""
        return max(g["lr"] for g in self.optimizer.param_groups)

"""The training core (training/): AMP choice per GPU, the rank's device, DDP before compile, the non-finite guard,
the per-step schedule, resume's config check and the up-front image check. Device-dependent choices are tested by
faking the device's capabilities; the trainers' end-to-end runs are in test_train.py and test_catr_train.py."""
import math
import re

import pytest
import torch
import torch.distributed as dist

from hw3io import UserError
from training import distributed as D
from training.engine import classification_loss, train_one_epoch
from training.precision import choose_amp, grad_scaler
from training.schedule import StepSchedule


def fake_gpu(monkeypatch, capability):
    """A CUDA device of ``capability`` as torch reports it, including the default of ``is_bf16_supported``, which
    counts emulated bf16 (True on a T4)."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation or capability >= (8, 0))


@pytest.mark.parametrize("capability, dtype", [((7, 5), torch.float16), ((7, 0), torch.float16),
                                               ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_amp_takes_native_bf16_only(monkeypatch, capability, dtype):
    """A T4 (7.5) or V100 (7.0) emulates bf16, slower than fp32: auto picks fp16 with a GradScaler there."""
    fake_gpu(monkeypatch, capability)
    chosen, why = choose_amp("auto", torch.device("cuda", 0))
    assert chosen == dtype and "%d.%d" % capability in why
    assert grad_scaler(torch.device("cpu"), chosen).is_enabled() == (dtype == torch.float16)


def test_amp_on_the_cpu(monkeypatch):
    assert choose_amp("auto", torch.device("cpu"))[0] is None
    assert choose_amp("bf16", torch.device("cpu"))[0] == torch.bfloat16
    assert choose_amp("off", torch.device("cpu"))[0] is None
    with pytest.raises(UserError, match="fp16 needs a CUDA GPU"):
        choose_amp("fp16", torch.device("cpu"))
    fake_gpu(monkeypatch, (7, 5))
    assert "emulated" in choose_amp("bf16", torch.device("cuda", 0))[1]  # asked for: honoured, with a warning


def test_each_torchrun_rank_uses_its_own_gpu(monkeypatch, capsys):
    monkeypatch.setattr(D, "pick_device", lambda name, local_rank=0: torch.device(name) if ":" in name
                        else torch.device("cuda", local_rank))
    assert D.rank_device("cuda:1", local_rank=0, world_size=2) == torch.device("cuda", 0)
    assert D.rank_device("cuda:1", local_rank=1, world_size=2) == torch.device("cuda", 1)
    assert D.rank_device("cuda", local_rank=1, world_size=2) == torch.device("cuda", 1)
    assert D.rank_device("cuda:1", local_rank=0, world_size=1) == torch.device("cuda", 1)  # one process: as asked
    assert "cuda:LOCAL_RANK" in capsys.readouterr().out


def test_ddp_wraps_the_model_before_compile(monkeypatch):
    from torch.nn.parallel import DistributedDataParallel
    from training.loop import wrap_model
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or m)
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:0", world_size=1, rank=0)
    try:
        wrapped = wrap_model(torch.nn.Linear(2, 2), D.DistInfo(world_size=2), compile=True)
    finally:
        dist.destroy_process_group()
    assert len(compiled) == 1 and isinstance(compiled[0], DistributedDataParallel) and wrapped is compiled[0]


def one_epoch(model, batches, loss_fn, scaler=None, clip_grad=None):
    """Run ``train_one_epoch`` over ``batches``; returns the weights after each completed step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    snapshots = []
    train_one_epoch(model, batches, opt, StepSchedule(opt, total=len(batches)),
                    scaler or torch.amp.GradScaler("cpu", enabled=False), info=D.DistInfo(), epoch=0,
                    step_in_epoch=0, steps_per_epoch=len(batches), accum_steps=1, loss_fn=loss_fn,
                    clip_grad=clip_grad, amp_dtype=None,
                    on_step=lambda *a: snapshots.append({k: v.clone() for k, v in model.state_dict().items()}))
    return snapshots


def test_non_finite_loss_stops_before_the_step():
    """A bad batch must not reach the weights: the check runs before the optimizer step."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x = torch.randn(3, 8, 4)
    x[1, 0, 0] = float("nan")  # the second batch is poisoned
    batches = [(x[i], torch.randint(0, 3, (8,)), torch.arange(8)) for i in range(3)]
    after_first = {}
    loss_fn = classification_loss()

    def remember(model, batch, device):  # the weights as the second step's loss sees them
        if batch[0] is batches[1][0]:
            after_first.update({k: v.clone() for k, v in model.state_dict().items()})
        return loss_fn(model, batch, device)

    with pytest.raises(FloatingPointError, match="loss is not finite at epoch 0 step 2"):
        one_epoch(model, batches, remember)
    for k, v in model.state_dict().items():
        assert torch.isfinite(v).all() and torch.equal(v, after_first[k]), k


def sqrt_loss(model, batch, device):
    """Finite (0 at w = 0) with an infinite gradient (d sqrt(w)/dw at 0): what an overflow in backward looks like."""
    w = model.weight
    return torch.sqrt((w - w.detach()).abs()).sum() + (w * batch).sum(), 1


@pytest.mark.parametrize("clip_grad", [None, 1.0])
def test_finite_loss_with_inf_gradients_never_reaches_the_weights(clip_grad):
    model = torch.nn.Linear(2, 2, bias=False)
    before = model.weight.detach().clone()
    with pytest.raises(FloatingPointError, match="gradient norm is"):
        one_epoch(model, [torch.ones(2, 2)], sqrt_loss, clip_grad=clip_grad)
    assert torch.equal(model.weight.detach(), before)


def test_fp16_scaler_skips_an_overflowing_step_instead():
    """With a GradScaler an inf gradient is routine (the scale is too high): the step is skipped, not an error."""
    model = torch.nn.Linear(2, 2, bias=False)
    before = model.weight.detach().clone()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    one_epoch(model, [torch.ones(2, 2)], sqrt_loss, scaler=scaler)
    assert torch.equal(model.weight.detach(), before) and scaler.get_scale() < 2.0 ** 16


def test_schedule_is_a_function_of_the_step_with_layer_scales():
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr_scale": 0.25},
              {"params": [torch.nn.Parameter(torch.zeros(1))]}]
    opt = torch.optim.SGD(groups, lr=1e-3)
    sched = StepSchedule(opt, total=100, warmup=10, min_factor=0.01)
    sched.set_step(0)
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-5) and sched.lr == opt.param_groups[1]["lr"]
    assert sched.peak == pytest.approx(1e-3)  # the start line's "peak lr": after warmup, not the warmup's first
    sched.set_step(50)
    mid = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi / 2))
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-3 * mid)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25e-3 * mid)
    assert sched.lr == pytest.approx(1e-3 * mid)  # the peak lr, not group 0's
    sched.set_step(100)
    assert sched.lr == pytest.approx(1e-5)
    step = StepSchedule(opt, total=100, kind="step", drop_every=30)
    step.set_step(29)
    assert step.lr == pytest.approx(1e-3)
    step.set_step(60)
    assert step.lr == pytest.approx(1e-5)


def test_resume_refuses_a_changed_setting(capsys):
    from training.state import check_resumable
    saved = {"batch_size": 4, "accum_steps": 1, "world_size": 1, "seed": 0, "model": "a"}
    check_resumable("last.safetensors", saved, dict(saved), 2, 2)
    with pytest.raises(UserError, match="batch_size was 4, now 8; world_size was 1, now 2"):
        check_resumable("last.safetensors", saved, dict(saved, batch_size=8, world_size=2), 2, 2)
    check_resumable("last.safetensors", saved, dict(saved), 2, 5)
    assert "2-epoch run, now 5 epochs" in capsys.readouterr().out


def test_image_check_names_every_bad_file(tmp_path):
    from PIL import Image
    from training.images import SHOWN, check_images
    paths = []
    for i in range(40):
        p = tmp_path / f"{i:02d}.png"
        Image.new("RGB", (8, 8)).save(p)
        paths.append(p)
    check_images(paths, workers=2, skip_hint="")  # all good: no error
    bad = [paths[3], paths[17], *paths[30:36]]
    for p in bad:
        p.write_bytes(b"not an image")
    with pytest.raises(UserError) as e:
        check_images(paths, workers=2, skip_hint="Move them out.")
    msg = str(e.value)
    assert msg.startswith(f"{len(bad)} of 40 images do not decode: ") and msg.endswith("Move them out.")
    assert all(str(p) in msg for p in bad[:SHOWN]) and f"and {len(bad) - SHOWN} more" in msg


def test_catr_imports_neither_vitpet_nor_timm():
    from helpers import run
    code = ("import pkgutil, importlib, sys, catr\n"
            "for m in pkgutil.iter_modules(catr.__path__): importlib.import_module('catr.' + m.name)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'timm', 'vitpet'}))")
    proc = run(["python3", "-c", code])
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_deterministic_mode(monkeypatch):
    from training.seeding import use_deterministic
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        use_deterministic(True)
        import os
        assert torch.are_deterministic_algorithms_enabled() and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(False)


class SignalHandlers(torch.utils.data.Dataset):
    """Reports, from inside a loader worker, whether SIGINT and SIGTERM are ignored there."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        import signal
        return torch.tensor([signal.getsignal(s) is signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM)])


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_loader_workers_leave_ctrl_c_and_sigterm_to_the_main_process(context):
    """A worker killed by Ctrl-C (sent to the whole process group) would end the run with 'DataLoader worker
    exited unexpectedly' before the main process could save; spawned workers (macOS, Python 3.14's forkserver)
    do not even inherit the main process's handlers."""
    from training.seeding import make_loader
    loader = make_loader(SignalHandlers(), batch_size=2, num_workers=1, multiprocessing_context=context)
    assert next(iter(loader)).all()


@pytest.mark.parametrize("env, fragment", [
    (dict(WORLD_SIZE="4", RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="4"), "--nproc_per_node 2"),
    (dict(WORLD_SIZE="two"), "$WORLD_SIZE is 'two'"),
    (dict(WORLD_SIZE="2", LOCAL_RANK="-1"), "$LOCAL_RANK is '-1'"),
])
def test_launch_errors_are_one_line_before_any_gpu_is_touched(monkeypatch, env, fragment):
    """More torchrun ranks than GPUs would end in CUDA's 'invalid device ordinal' traceback; a bad torchrun
    variable in int()'s ValueError."""
    from hw3io import UserError
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: pytest.fail("a GPU was touched"))
    with pytest.raises(UserError, match=re.escape(fragment)):
        D.init_distributed("auto")


def test_extra_ranks_exit_quietly_beside_the_one_that_explains(monkeypatch):
    for k, v in dict(WORLD_SIZE="4", RANK="3", LOCAL_RANK="3", LOCAL_WORLD_SIZE="4").items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(SystemExit) as e:
        D.init_distributed("cuda")
    assert e.value.code == 2

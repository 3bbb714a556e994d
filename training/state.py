"""Resumable training state in one ``.safetensors`` file: tensors as tensors, everything else as JSON metadata.

Holds model, optimizer, grad scaler, progress (epoch, step, best metric, metric history, partial loss sums)
and every RNG that affects the run, per rank. Loading never unpickles.
"""
import json
import random
from pathlib import Path

import numpy as np
import torch

from hw3io import UserError, read_tensors, save_tensors

STATE_FORMAT = "hw3-training-state/1"


def capture_rng() -> dict:
    """This process's RNG states: (tensors, json)."""
    py = random.getstate()
    np_state = np.random.get_state()
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    meta = {"python": [py[0], list(py[1]), py[2]],
            "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])]}
    return {"tensors": tensors, "meta": meta}


def restore_rng(rng: dict) -> None:
    py = rng["meta"]["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = rng["meta"]["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(rng["tensors"]["torch"])
    cuda = [rng["tensors"][k] for k in sorted(rng["tensors"]) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_state(path, *, model, optimizer, scaler, progress: dict, rngs: list[dict], config: dict) -> None:
    """Atomically write the full state; ``rngs`` holds one ``capture_rng()`` per rank."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for pid, st in opt["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{name}"] = v
    for r, rng in enumerate(rngs):
        for k, v in rng["tensors"].items():
            tensors[f"rng.{r}.{k}"] = v
    meta = {
        "format": STATE_FORMAT,
        "progress": json.dumps(progress),
        "config": json.dumps(config),
        "param_groups": json.dumps(opt["param_groups"]),
        "optim_scalars": json.dumps({str(pid): {n: v for n, v in st.items() if not torch.is_tensor(v)}
                                     for pid, st in opt["state"].items()}),
        "scaler": json.dumps(scaler.state_dict() if scaler.is_enabled() else {}),
        "rng_meta": json.dumps([rng["meta"] for rng in rngs]),
    }
    save_tensors(path, tensors, meta)


def load_state(path) -> dict:
    """Read a state file into plain dicts (see :func:`apply_state`)."""
    tensors, meta = read_tensors(path, "training state")
    if meta.get("format") != STATE_FORMAT:
        raise UserError(f"not a training state of p1_train.py or p2_train.py: {path}")
    return {"tensors": tensors, **{k: json.loads(v) for k, v in meta.items() if k != "format"}}


def apply_state(state: dict, *, model, optimizer, scaler, rank: int) -> dict:
    """Load model, optimizer, scaler and this rank's RNGs from ``state``; return the progress dict."""
    t = state["tensors"]
    model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")}, strict=True)
    opt_state = {}
    for pid, scalars in state["optim_scalars"].items():
        opt_state[int(pid)] = dict(scalars)
    for k, v in t.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    if state["scaler"] and scaler.is_enabled():
        scaler.load_state_dict(state["scaler"])
    restore_rng({"meta": state["rng_meta"][rank],
                 "tensors": {k.split(".", 2)[2]: v for k, v in t.items() if k.startswith(f"rng.{rank}.")}})
    return state["progress"]


def resume_path(resume, out: Path):
    """``--resume``: a state file, or "auto" for OUTPUT_DIR/last.safetensors when it exists (else a fresh start)."""
    if resume == "auto":
        last = out / "last.safetensors"
        return last if last.is_file() else None
    return resume


def check_resumable(path, saved: dict, now: dict, saved_epochs: int, epochs: int) -> None:
    """A resumed run continues the same run: the settings in ``now`` (batch size, accumulation, world size, seed,
    model, image size, data...) decide the data order and the schedule, so any change is refused, naming it. More
    (or fewer) epochs are allowed: the schedule is stretched from the current step on."""
    changed = [f"{k} was {saved.get(k)!r}, now {v!r}" for k, v in now.items() if saved.get(k) != v]
    if changed:
        raise UserError(f"cannot resume {path}: {'; '.join(changed)} (resume with the run's settings, or start a new "
                        "--output-dir)")
    if saved_epochs != epochs:
        print(f"note: {path} was a {saved_epochs}-epoch run, now {epochs} epochs: the lr schedule changes from "
              "here on")

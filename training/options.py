"""Every training knob lives in one dataclass per problem; argparse groups are built from it, it is saved with every
checkpoint, and ``config_argv`` turns a saved one back into the command line that rebuilds it."""
import argparse
import dataclasses
from dataclasses import dataclass, field


AMP_HELP = ("mixed precision: auto = bf16 on GPUs that run it natively (compute capability 8.0+), fp16 with a "
            "GradScaler on older ones (T4, V100), fp32 on the CPU; bf16 on the CPU is its autocast. Validation "
            "always runs in fp32")


def option(default, help, group, **kw):
    """A config field with its ``--help`` text and argparse group; ``choices``, ``parse`` (a parser for the flag's
    value) and ``required`` (the CLI must give it) are passed through."""
    return field(default=default, metadata=dict(help=help, group=group, **kw))


def none_or_float(s: str):
    return None if s.lower() in ("none", "0", "off") else float(s)


def _optional(tp):
    return tp.__args__[0] if hasattr(tp, "__args__") else tp


@dataclass
class RunOptions:
    """The runtime flags every trainer shares (the fit loop reads them); a problem's config extends it."""
    seed: int = option(0, "random seed (model init, data order, augmentation)", "runtime")
    device: str = option("auto", "auto: cuda if available, else cpu; under torchrun each rank uses cuda:LOCAL_RANK",
                         "runtime")
    amp: str = option("auto", AMP_HELP, "runtime", choices=("auto", "bf16", "fp16", "off"))
    compile: bool = option(False, "torch.compile the model (after DDP wraps it)", "runtime")
    deterministic: bool = option(False, "deterministic algorithms only (CUDA: repeatable runs, somewhat slower)",
                                 "runtime")
    resume: str | None = option(None, "a state file to continue from, or 'auto' (OUTPUT_DIR/last.safetensors)",
                                "runtime")
    save_every: int = option(0, "also save a resumable state every N optimizer steps (0: once per epoch)", "runtime")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def add_config_args(parser: argparse.ArgumentParser, cls) -> argparse.ArgumentParser:
    """One argparse group per ``group`` metadata; bools become ``--flag`` / ``--no-flag``."""
    groups = {}
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.metadata["group"] == "runtime"):  # runtime last
        g = f.metadata["group"]
        if g not in groups:
            groups[g] = parser.add_argument_group(g)
        flag = "--" + f.name.replace("_", "-")
        required = f.metadata.get("required", False)
        help = f.metadata["help"] + (" (required)" if required else "" if f.default is None
                                     else f" (default: {f.default})")
        if f.type is bool:
            groups[g].add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                                   help=f.metadata["help"])
            continue
        tp = f.metadata.get("parse", _optional(f.type))
        groups[g].add_argument(flag, dest=f.name, type=tp, default=f.default, help=help, required=required,
                               choices=f.metadata.get("choices"))
    return parser


def config_from_args(args: argparse.Namespace, cls):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def config_argv(config: dict, cls) -> list[str]:
    """The flags that rebuild ``config`` (a saved ``to_dict()``): only those that differ from the defaults, so the
    command a report prints stays short. ``resume`` is never repeated."""
    argv = []
    for f in dataclasses.fields(cls):
        if f.name == "resume" or f.name not in config or config[f.name] == f.default:
            continue
        flag, value = "--" + f.name.replace("_", "-"), config[f.name]
        if f.type is bool:
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, "none" if value is None else str(value)]
    return argv

"""The training core both problems use (as DETR's ``engine.py`` and ``util/misc.py`` serve every model from one place
beside the models): ``options`` (config dataclass -> argparse), ``distributed`` (torchrun), ``precision`` (AMP),
``engine`` (the epoch loop), ``schedule`` (per-step learning rates), ``state`` (exact resume), ``images`` (checks before
the first step), ``runlog`` (log.csv, run.json) and ``loop`` (``fit``, the one fit loop and its hooks).
Nothing here knows a model; ``vitpet`` and ``catr`` import it, never each other.
"""

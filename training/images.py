"""Every image decoded before the first step: a corrupt file ends the run in seconds, not an hour in."""
from pathlib import Path

from torch.utils.data import Dataset

from hw3io import UserError, load_rgb, progress
from .distributed import DistInfo, all_gather_objects
from .seeding import make_loader

SHOWN = 5  # bad files named in the error line


class _Decode(Dataset):
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            load_rgb(self.paths[i])
            return None
        except UserError as e:
            return str(self.paths[i]), str(e).removeprefix(f"cannot read image {self.paths[i]}: ")


def check_images(paths, *, workers: int, info: DistInfo | None = None, skip_hint: str) -> None:
    """Decode ``paths`` in the loader's worker processes (each rank its share) and raise one ``UserError`` naming
    the bad files (the first ``SHOWN``) and ``skip_hint``, how to leave them out."""
    info = info or DistInfo()
    paths = [Path(p) for p in paths]
    mine = paths[info.rank::info.world_size]
    loader = make_loader(_Decode(mine), batch_size=32, num_workers=min(workers, max(len(mine) // 32, 0)),
                         collate_fn=list)
    bad = []
    with progress(total=len(mine), desc="checking images", disable=not info.is_main, leave=False) as bar:
        for results in loader:
            bad += [r for r in results if r is not None]
            bar.update(len(results))
    bad = sorted(b for rank_bad in all_gather_objects(bad, info) for b in rank_bad)
    if bad:
        named = "; ".join(f"{p} ({why})" for p, why in bad[:SHOWN])
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        raise UserError(f"{len(bad)} of {len(paths)} images do not decode: {named}{more}. {skip_hint}")

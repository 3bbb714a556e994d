"""What the maps cost on CPU. First the perturbation maps: RISE, occlusion and deletion/insertion for one 64 px
image on the demo's tiny ViT (``vit_demo_patch8``, random init, 37 classes), explaining its top class by
log-probability. Each case is one small function returning its forward count; the table gives seconds and images
per second. The model's speed, not the maps' bookkeeping, should set the pace. Then the maps of one pass on
the homework's ViT-B/16 (random init, one 224 px image, median of 3): attention, relevance and attribution.

Usage: python3 bench/bench_explanations.py [--masks 1000] [--threads N]
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hw3io import markdown_table  # noqa: E402
from hw3io.cpu import describe_cpu  # noqa: E402


def bench_forward(score_fn, image, count, batch=50):
    """The ceiling: the model alone on ``count`` copies of the image."""
    import torch
    with torch.no_grad():
        for start in range(0, count, batch):
            score_fn(image.expand(min(batch, count - start), -1, -1, -1))
    return count


def bench_rise(score_fn, image, masks):
    from explanations import rise
    rise(score_fn, image, masks=masks, batch=50)
    return masks


def bench_occlusion(score_fn, image, cell, stride):
    from explanations import occlusion
    from explanations.perturbation import occlusion_windows
    occlusion(score_fn, image, cell=cell, stride=stride)
    rows, cols = (len(occlusion_windows(size, cell, stride)) for size in image.shape[1:])
    windows = rows * cols
    return windows + 1  # and the unoccluded image


def bench_deletion_insertion(prob_fn, image, steps):
    import torch
    from explanations import deletion_insertion
    deletion_insertion(prob_fn, image, torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0)), steps=steps)
    return 2 * (steps - 1) + 3


def bench_one_pass_maps(model_name="vit_base_patch16_224", repeats=3) -> list[tuple]:
    """Seconds per image of the maps that need one forward pass (and one backward pass for the gradient ones)."""
    import statistics
    import timm
    import torch
    from vitpet.attention import attention_maps
    from vitpet.lrp import transformer_attribution
    from vitpet.relevance import predicted_classes, relevance
    model = timm.create_model(model_name, pretrained=False, num_classes=37).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    classes = predicted_classes(model, x)
    cases = {"attention (one forward pass)": lambda: attention_maps(model, x),
             "relevance (forward + backward)": lambda: relevance(model, x, classes),
             "attribution (forward + backward + LRP in float64)": lambda: transformer_attribution(model, x, classes)}
    rows = []
    for name, case in cases.items():
        case()  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            case()
            times.append(time.perf_counter() - started)
        rows.append((f"{model_name}: {name}", f"{statistics.median(times):.2f}"))
        print(f"{rows[-1][0]}: {rows[-1][1]} s", flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--masks", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    a = p.parse_args()
    import timm
    import torch
    import vitpet.model  # noqa: F401  (registers vit_demo_patch8)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(describe_cpu())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    torch.manual_seed(0)
    model = timm.create_model("vit_demo_patch8", num_classes=37).eval()
    image = torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target = int(model(image[None]).argmax())
    score_fn = lambda x: model(x).log_softmax(-1)[:, target:target + 1]  # noqa: E731
    prob_fn = lambda x: model(x).softmax(-1)[:, target:target + 1]  # noqa: E731
    cases = [(f"model alone, {a.masks} images, batch 50", lambda: bench_forward(score_fn, image, a.masks)),
             (f"RISE, {a.masks} masks, batch 50", lambda: bench_rise(score_fn, image, a.masks)),
             ("occlusion, cell 8, stride 8", lambda: bench_occlusion(score_fn, image, 8, 8)),
             ("occlusion, cell 8, stride 4", lambda: bench_occlusion(score_fn, image, 8, 4)),
             ("deletion + insertion, 16 steps", lambda: bench_deletion_insertion(prob_fn, image, 16))]
    rows = []
    for name, case in cases:
        started = time.perf_counter()
        forwards = case()
        seconds = time.perf_counter() - started
        rows.append((name, forwards, f"{seconds:.2f}", f"{forwards / seconds:.0f}"))
        print(f"{name}: {seconds:.2f} s", flush=True)
    print("\n" + markdown_table(("case", "images scored", "seconds", "images/s"), rows, "lrrr"))
    print("\n" + markdown_table(("map of one image", "seconds"), bench_one_pass_maps(), "lr"))


if __name__ == "__main__":
    main()

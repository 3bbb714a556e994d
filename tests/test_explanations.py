"""explanations/: RISE and occlusion find a planted region (RISE's centred estimator without the published one's
coverage pattern), to_grid pools by exact area, deletion/insertion rank planted maps above random and inverted ones
(one area by hand), and the randomisation check tells an edge map from a model's gradient."""
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from explanations import (deletion_insertion, occlusion, random_baseline_areas, randomized_copy, rank_correlation,
                          rise, rise_masks, to_grid)
from hw3io.errors import UserError

SIZE = 32


def square(r0, r1, c0, c1, size=SIZE) -> torch.Tensor:
    region = torch.zeros(size, size, dtype=torch.bool)
    region[r0:r1, c0:c1] = True
    return region


REGION = square(4, 12, 4, 12)  # the planted model looks only here
FAR = ~square(0, 20, 0, 20)  # two RISE cells (4 px each) or more from REGION: masks there are independent of it


def region_mean(images: torch.Tensor, regions) -> torch.Tensor:
    """(B, C, H, W) -> (B, K): the mean of channel 0 over each of K (H, W) regions."""
    return torch.stack([images[:, 0][:, r].mean(1) for r in regions], 1)


def near_certain(images):
    """A planted model that is sure of itself (probability 0.88-0.998) and depends only on REGION."""
    return torch.sigmoid(4 * region_mean(images, [REGION]) + 2)


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.numpy().ravel(), b.numpy().ravel())[0, 1])


# --- RISE -------------------------------------------------------------------------------------------------------

def test_rise_centred_estimator_finds_the_region_where_the_published_one_draws_mask_coverage():
    image = torch.ones(3, SIZE, SIZE)
    centred = rise(near_certain, image, masks=300, seed=0).maps[0]
    published = rise(near_certain, image, masks=300, seed=0, estimator="published").maps[0]
    coverage = rise_masks(300, (SIZE, SIZE), seed=0).double().sum(0)  # how often each pixel was kept
    assert REGION[np.unravel_index(int(centred.argmax()), centred.shape)]
    assert centred[FAR].abs().max() < 0.3 * centred.max()  # ~0 wherever the model does not look
    assert abs(correlation(centred[FAR], coverage[FAR])) < 0.5
    # The published estimator's far field is mean f times coverage: large, and the coverage count's own pattern.
    assert correlation(published[FAR], coverage[FAR]) > 0.95
    assert published[FAR].min() > 0.5 * published.max()


def test_rise_map_is_e_f_given_kept_minus_e_f_over_its_own_masks():
    image = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    masks = rise_masks(40, (SIZE, SIZE), cells=4, p=0.3, seed=7).double()  # (N, H, W)
    f = torch.stack([near_certain((image * m.float())[None])[0, 0].double() for m in masks])  # (N,) one at a time
    by_definition = (f[:, None, None] * masks).sum(0) / masks.sum(0) - f.mean()
    result = rise(near_certain, image, masks=40, cells=4, p=0.3, seed=7, batch=16)
    torch.testing.assert_close(result.maps[0], by_definition, rtol=1e-6, atol=1e-9)
    published = rise(near_certain, image, masks=40, cells=4, p=0.3, seed=7, estimator="published").maps[0]
    torch.testing.assert_close(published, (f[:, None, None] * masks).sum(0) / (40 * 0.3), rtol=1e-6, atol=1e-9)


def test_rise_is_reproducible_by_seed_and_batch_independent_and_records_its_settings():
    image = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    first = rise(near_certain, image, masks=60, batch=50, seed=3)
    again = rise(near_certain, image, masks=60, batch=7, seed=3)
    other = rise(near_certain, image, masks=60, batch=50, seed=4)
    torch.testing.assert_close(first.maps, again.maps, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(first.maps, other.maps)
    assert first.maps.shape == (1, SIZE, SIZE) and first.maps.dtype == torch.float64
    assert first.settings() == {"method": "rise", "seed": 3, "masks": 60, "cells": 8, "p": 0.5,
                                "estimator": "centred"}


PADDED = square(0, SIZE, 0, 24)  # valid region: the right 8 columns are padding


def recording(seen: list):
    """A planted score_fn that keeps what it was shown outside PADDED."""
    def score_fn(images):
        seen.append(images[..., ~PADDED])
        return region_mean(images, [REGION])
    return score_fn


def assert_padding_untouched(seen: list, image: torch.Tensor):
    assert seen
    for pixels in seen:
        torch.testing.assert_close(pixels, image[..., ~PADDED].expand_as(pixels), rtol=0, atol=0)


def test_rise_and_occlusion_never_touch_or_credit_pixels_outside_the_valid_region():
    image = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    seen = []
    maps = {"rise": rise(recording(seen), image, masks=40, baseline=-1.0, valid=PADDED).maps,
            "occlusion": occlusion(recording(seen), image, cell=4, stride=2, baseline=-1.0, valid=PADDED)}
    assert_padding_untouched(seen, image)
    for name, heat in maps.items():
        assert heat[:, ~PADDED].abs().max() == 0 and heat[:, PADDED].abs().max() > 0, name


# --- occlusion and to_grid ----------------------------------------------------------------------------------------

def test_occlusion_credits_exactly_the_windows_over_the_region():
    image = torch.ones(3, SIZE, SIZE)
    tiles = occlusion(lambda x: region_mean(x, [REGION]), image, cell=4)[0]  # stride 4 tiles the image
    expected = torch.zeros(SIZE, SIZE, dtype=torch.float64)
    expected[REGION] = 16 / 64  # each 4 x 4 window inside the 8 x 8 region removes a quarter of it
    torch.testing.assert_close(tiles, expected)
    sliding = occlusion(lambda x: region_mean(x, [REGION]), image, cell=8, stride=4, batch=10)[0]
    assert REGION[np.unravel_index(int(sliding.argmax()), sliding.shape)]
    assert sliding[FAR].abs().max() == 0
    # Pixel (0, 0) lies under one window, which hides a quarter of the region; pixel (5, 5) under four windows
    # (top-left at rows 0 or 4, columns 0 or 4) hiding 16, 32, 32 and 64 of its 64 pixels: their mean.
    assert sliding[0, 0] == pytest.approx(0.25)
    assert sliding[5, 5] == pytest.approx((16 + 32 + 32 + 64) / 64 / 4)


def test_to_grid_is_the_exact_area_average():
    blocks = torch.arange(16.0).reshape(1, 4, 4)
    torch.testing.assert_close(to_grid(blocks, (2, 2)), torch.tensor([[[2.5, 4.5], [10.5, 12.5]]],
                                                                     dtype=torch.float64))
    # 3 x 3 -> 2 x 2: cell (0, 0) holds pixel (0, 0) whole, (0, 1) and (1, 0) by half, (1, 1) by a quarter, of 2.25
    nine = torch.arange(9.0).reshape(1, 3, 3)
    by_hand = torch.tensor([[[0 + 1 * .5 + 3 * .5 + 4 * .25, 2 + 1 * .5 + 5 * .5 + 4 * .25],
                             [6 + 3 * .5 + 7 * .5 + 4 * .25, 8 + 5 * .5 + 7 * .5 + 4 * .25]]],
                           dtype=torch.float64) / 2.25
    torch.testing.assert_close(to_grid(nine, (2, 2)), by_hand)
    valid = torch.tensor([[True, True, False], [True, True, False], [True, True, False]])
    torch.testing.assert_close(to_grid(nine, (1, 1), valid=valid), torch.tensor([[[3.5]]], dtype=torch.float64))


# --- deletion and insertion ---------------------------------------------------------------------------------------

def intact_fraction(regions):
    """prob_fn of a planted model: for each region, the share of its pixels still at the original value 1."""
    return lambda images: region_mean(images, regions).clamp(0, 1)


def test_deletion_and_insertion_by_hand_on_a_2x2_image_with_a_tie():
    image = torch.ones(1, 2, 2)
    region = torch.tensor([[False, True], [True, False]])
    # (0, 0) and (0, 1) tie at the top: row-major puts (0, 0) first, then (0, 1), (1, 0), (1, 1).
    result = deletion_insertion(intact_fraction([region]), image, torch.tensor([[[1.0, 1.0], [0.0, 0.0]]]),
                                steps=4, blurred=torch.zeros(1, 2, 2))
    np.testing.assert_allclose(result["fractions"], [0, .25, .5, .75, 1])
    np.testing.assert_allclose(result["deletion"], [[1, 1, .5, 0, 0]])
    np.testing.assert_allclose(result["insertion"], [[0, 0, .5, 1, 1]])
    # trapezoids of width 1/4: (1+1)/2 + (1+.5)/2 + (.5+0)/2 + 0 = 2, and (0+0)/2 + (0+.5)/2 + (.5+1)/2 + 1 = 2
    np.testing.assert_allclose(result["deletion_auc"], [2 / 4])
    np.testing.assert_allclose(result["insertion_auc"], [2 / 4])


def test_planted_maps_beat_random_and_inverted_rankings_for_each_decision():
    image = torch.ones(3, SIZE, SIZE)
    regions = [REGION, square(20, 28, 16, 30)]  # decision k depends on region k only
    prob_fn = intact_fraction(regions)
    kwargs = dict(steps=16, blurred=torch.zeros(3, SIZE, SIZE), batch=20)
    planted = deletion_insertion(prob_fn, image, torch.stack(regions).double(), **kwargs)
    inverted = deletion_insertion(prob_fn, image, (~torch.stack(regions)).double(), **kwargs)
    swapped = deletion_insertion(prob_fn, image, torch.stack(regions[::-1]).double(), **kwargs)
    chance = random_baseline_areas(prob_fn, image, repeats=2, seed=0, **kwargs)
    for k in range(2):
        assert planted["deletion_auc"][k] < chance["deletion_auc"][k] < inverted["deletion_auc"][k]
        assert planted["insertion_auc"][k] > chance["insertion_auc"][k] > inverted["insertion_auc"][k]
        assert planted["deletion_auc"][k] < swapped["deletion_auc"][k]  # each decision uses its own ranking
        assert chance["deletion_auc"][k] == pytest.approx(0.5, abs=0.1)
    assert planted["deletion"].shape == (2, 17) and planted["deletion_auc"][0] < 0.05
    # A grid map (the layout of attention) is upsampled and gives the same verdict.
    grid = to_grid(torch.stack(regions).double(), (8, 8))
    assert (deletion_insertion(prob_fn, image, grid, **kwargs)["deletion_auc"] < chance["deletion_auc"]).all()


def test_insertion_starts_from_the_documented_blur_by_default():
    image = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    prob_fn = intact_fraction([REGION])
    result = deletion_insertion(prob_fn, image, REGION[None].double(), steps=2)
    blurred = gaussian_blur(image, [11, 11], [5.0, 5.0])
    assert result["insertion"][0, 0] == pytest.approx(float(prob_fn(blurred[None])[0, 0]), abs=1e-6)
    assert result["insertion"][0, 0] != pytest.approx(float(prob_fn(image[None])[0, 0]), abs=1e-3)


def test_deletion_and_insertion_never_touch_padding_and_step_over_valid_pixels_only():
    image = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    seen = []
    result = deletion_insertion(recording(seen), image, torch.rand(1, SIZE, SIZE), steps=4, baseline=-1.0,
                                blurred=torch.zeros(3, SIZE, SIZE), valid=PADDED)
    assert_padding_untouched(seen, image)
    # the last deletion step has removed every valid pixel, REGION's included: its mean is the baseline's
    assert result["deletion"][0, -1] == pytest.approx(-1.0)
    np.testing.assert_allclose(result["fractions"], [0, .25, .5, .75, 1])


# --- model randomisation ------------------------------------------------------------------------------------------

def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1))


def smooth_images() -> torch.Tensor:
    return F.avg_pool2d(torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)), 3, 1, 1)


def gradient_map(model, images):
    """(N, H, W): d output / d input, summed over channels; it depends on the weights."""
    x = images.clone().requires_grad_(True)
    model(x).sum().backward()
    return x.grad.sum(1)


def edge_map(model, images):
    """(N, H, W): Sobel magnitude of the grey image; ``model`` is ignored, as an image-only map ignores it."""
    grey = images.mean(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    gx, gy = F.conv2d(grey, kx[None, None], padding=1), F.conv2d(grey, kx.T[None, None], padding=1)
    return (gx ** 2 + gy ** 2).sqrt()[:, 0]


def test_randomisation_check_catches_a_map_that_ignores_the_model():
    model, images = tiny_cnn(), smooth_images()
    randomized = randomized_copy(model, seed=1)
    assert rank_correlation(edge_map(model, images), edge_map(randomized, images)) > 0.99
    assert abs(rank_correlation(gradient_map(model, images), gradient_map(randomized, images))) < 0.3


def test_randomized_copy_redraws_every_parameter_reproducibly_and_leaves_the_model():
    model = tiny_cnn()
    model.token = nn.Parameter(torch.zeros(1, 4))  # no reset_parameters covers it: drawn from a normal
    before = {n: p.clone() for n, p in model.named_parameters()}
    rng_state = torch.random.get_rng_state()
    first, again = randomized_copy(model, seed=5), randomized_copy(model, seed=5)
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name])
        assert not torch.equal(dict(first.named_parameters())[name], parameter), name
        assert torch.equal(dict(first.named_parameters())[name], dict(again.named_parameters())[name])
    assert 0.005 < first.token.std() < 0.05


def test_rank_correlation_without_scipy_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(UserError, match="scipy"):
        rank_correlation(torch.rand(2, 4), torch.rand(2, 4))

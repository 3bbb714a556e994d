"""catr/decode.py, preprocess.py, tokenizer.py."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from catr.decode import caption_image, cross_attention, greedy_decode, naive_decode
from catr.preprocess import preprocess, resized_shape
from catr.tokenizer import CaptionTokenizer, load_tokenizer
from hw3io import upsample
from catr_tiny import tiny_model, write_vocab
from hw3io import UserError


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def image():
    g = torch.Generator().manual_seed(0)
    arr = (torch.rand(90, 140, 3, generator=g) * 255).byte().numpy()
    return preprocess(Image.fromarray(arr))


def test_fast_decode_equals_naive_loop(model, image):
    _, x, mask = image
    ids, ended, maps = naive_decode(model, x, mask, 2, 3, max_len=24, layer=-1)
    fast = caption_image(model, x, mask, 2, 3, max_len=24, layer=-1)
    assert fast.ids == ids and fast.ended == ended
    assert fast.maps.shape == maps.shape == (len(ids) + ended, *fast.grid)
    assert torch.allclose(fast.maps, maps, atol=1e-5)


def test_fast_equals_naive_when_the_caption_ends(model, image):
    _, x, mask = image
    free, _, _ = naive_decode(model, x, mask, 2, end_id=-1, max_len=24)
    end_id = next(t for t in free if t != free[0])  # stop at the first token that differs from the first one
    ids, ended, maps = naive_decode(model, x, mask, 2, end_id, max_len=24, layer=0)
    fast = caption_image(model, x, mask, 2, end_id, max_len=24, layer=0)
    assert ended and fast.ended and fast.ids == ids and end_id not in ids
    assert len(fast.maps) == len(ids) + 1  # one map per token plus the query that generated [SEP]
    assert torch.allclose(fast.maps, maps, atol=1e-5)


def test_per_head_maps_average_to_the_mean(model, image):
    _, x, mask = image
    ids, ended, enc = greedy_decode(model, x, mask, 2, 3, max_len=10)
    heads = cross_attention(model, enc, 2, ids, ended, layer=-1, heads=True)
    mean = cross_attention(model, enc, 2, ids, ended, layer=-1)
    assert heads.shape == (len(ids), 4, *enc[3]) and torch.allclose(heads.mean(1), mean, atol=1e-6)
    assert torch.allclose(mean.sum((-2, -1)), torch.ones(len(ids)), atol=1e-5)  # each map is a distribution


def test_stop_at_end_false_runs_to_max_len(model, image):
    _, x, mask = image
    ids, ended, _ = greedy_decode(model, x, mask, 2, 3, max_len=12, stop_at_end=False)
    assert len(ids) == 11 and not ended


@pytest.mark.parametrize("size,expected", [((640, 480), (299, 224)), ((480, 640), (224, 299)), ((299, 299), (299, 299)),
                                           ((1000, 333), (299, 99)), ((100, 50), (299, 149))])
def test_resize_longer_side_to_299(size, expected):
    assert resized_shape(size) == expected
    small, x, mask = preprocess(Image.new("RGB", size, (255, 0, 0)))
    assert small.size == expected and x.shape == (1, 3, expected[1], expected[0]) and mask.shape == (1, *x.shape[-2:])
    assert not mask.any()
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([1.0, -1.0, -1.0]))  # (v - 0.5) / 0.5


def test_planted_peak_on_non_square_image():
    small, x, _ = preprocess(Image.new("RGB", (640, 400)))
    H, W = x.shape[-2:]
    gh, gw = math.ceil(H / 16), math.ceil(W / 16)
    assert (H, W) == (186, 299) and (gh, gw) == (12, 19)
    for r, c in [(0, 0), (gh - 1, gw - 1), (5, 13)]:
        m = torch.zeros(1, gh, gw)
        m[0, r, c] = 1
        heat = upsample(m, (H, W))[0].numpy()
        y, xx = np.unravel_index(heat.argmax(), heat.shape)
        assert r * H / gh <= y < (r + 1) * H / gh and c * W / gw <= xx < (c + 1) * W / gw


def test_tokenizer_ids_and_decoding(tmp_path):
    tok = CaptionTokenizer(write_vocab(tmp_path / "vocab.txt"))
    assert (tok.start_id, tok.end_id, tok.pad_id) == (2, 3, 0)
    ids = tok.encode("A man riding bikes on the street.")
    pieces = [tok.token(i) for i in ids]
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]" and "##s" in pieces
    assert tok.decode(ids) == "a man riding bikes on the street."


def test_tokenizer_lookup(tmp_path, monkeypatch):
    assert load_tokenizer(write_vocab(tmp_path / "v.txt")).vocab_size == 24
    monkeypatch.setenv("CATR_VOCAB", str(tmp_path / "v.txt"))  # read by the scripts, not the library
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(UserError, match="--vocab"):
        load_tokenizer()
    with pytest.raises(UserError, match="not found"):
        load_tokenizer(tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_text("hello\nworld\n")
    with pytest.raises(UserError, match="lacks"):
        load_tokenizer(tmp_path / "bad.txt")


def test_planted_peak_lands_in_the_right_place_of_the_png(tmp_path):
    from catr.visualize import plot_caption_attention
    small, x, _ = preprocess(Image.new("RGB", (640, 400), (128, 128, 128)))
    H, W = x.shape[-2:]
    gh, gw = math.ceil(H / 16), math.ceil(W / 16)
    cells = [(2, 15), (9, 3)]
    maps = torch.zeros(len(cells), gh, gw)
    for k, (r, c) in enumerate(cells):
        maps[k, r, c] = 1
    heat = upsample(maps, (H, W)).numpy()
    png = tmp_path / "planted.png"
    boxes = plot_caption_attention(np.asarray(small), heat, ["cat", "<end>"], "a cat", png)
    drawn = np.asarray(Image.open(png).convert("RGB")).astype(int)
    for k, (r, c) in enumerate(cells):
        left, top, right, bottom = boxes[k + 1]
        assert abs((right - left) / (bottom - top) - W / H) < 0.03  # the tile shows the whole resized image
        tile = drawn[top:bottom, left:right]
        redness = tile[..., 0] - tile[..., 2]  # jet's peak is red, its floor blue
        py, px = np.unravel_index(redness.argmax(), redness.shape)
        y, xx = (py + 0.5) / tile.shape[0] * H, (px + 0.5) / tile.shape[1] * W  # back to resized-image pixels
        assert r * H / gh - 2 <= y <= (r + 1) * H / gh + 2 and c * W / gw - 2 <= xx <= (c + 1) * W / gw + 2


def prefix_greedy(model, x, mask, start, end, max_len):
    """The decoder before caching: the whole prefix re-run for every token (what cached decoding must equal)."""
    memory, fmask, pos, _ = model.encode_image(x, mask)
    ids, logits = torch.tensor([[start]]), []
    while ids.shape[1] < max_len:
        step = model.decode(ids, None, memory, fmask, pos, last_only=True)[0][0, -1]
        logits.append(step)
        if step.argmax().item() == end:
            break
        ids = torch.cat([ids, step.argmax().view(1, 1)], 1)
    return ids[0, 1:].tolist(), torch.stack(logits)


@pytest.fixture(scope="module")
def full_model():
    from catr import CATRConfig, build_model
    torch.manual_seed(0)
    return build_model(CATRConfig()).eval()  # the official architecture: ResNet-101, 6+6 layers, 256 wide


@pytest.mark.parametrize("hw", [(299, 299), (180, 299), (299, 150)])
def test_cached_decoding_equals_the_prefix_decoder(full_model, hw):
    g = torch.Generator().manual_seed(hw[0] + hw[1])
    x, mask = torch.randn(1, 3, *hw, generator=g), torch.zeros(1, *hw, dtype=torch.bool)
    ref_ids, ref_logits = prefix_greedy(full_model, x, mask, 101, 102, max_len=12)
    out = caption_image(full_model, x, mask, 101, 102, max_len=12, layer=-1)
    assert out.ids == ref_ids and len(ref_ids) == 11  # random weights never end
    with torch.no_grad():  # the cached step's logits, position by position
        memory, fmask, pos, _ = full_model.encode_image(x, mask)
        cache = full_model.transformer.start_cache(memory, fmask, pos)
        cached = torch.stack([full_model.step(torch.tensor([t]), cache)[0] for t in [101] + ref_ids[:-1]])
    assert torch.allclose(cached, ref_logits[:len(cached)], atol=1e-4)
    _, _, ref_maps = naive_decode(full_model, x, mask, 101, 102, max_len=12, layer=-1)
    assert torch.allclose(out.maps, ref_maps, atol=1e-5)


def test_batched_cached_decoding_equals_one_at_a_time(full_model):
    from catr.decode import greedy_decode_batch
    g = torch.Generator().manual_seed(5)
    x, mask = torch.randn(3, 3, 128, 160, generator=g), torch.zeros(3, 128, 160, dtype=torch.bool)
    batch = greedy_decode_batch(full_model, x, mask, 101, 102, max_len=12)
    for b in range(3):
        ids, ended, _ = greedy_decode(full_model, x[b:b + 1], mask[b:b + 1], 101, 102, max_len=12)
        assert batch[b] == (ids, ended)


def table_step(table, vocab):
    """A step function from a table of next-token log-probabilities per prefix (tuple of tokens); prefixes not in
    the table predict the end token."""
    prefixes = [()]

    def step(tokens, parents):
        prefixes[:] = [prefixes[p] + ((t,) if t != 0 else ()) for p, t in zip(parents.tolist(), tokens.tolist())]
        rows = []
        for prefix in prefixes:
            row = torch.full((vocab,), -30.0)
            for token, p in table.get(prefix, {9: 1.0}).items():
                row[token] = math.log(p)
            rows.append(row)
        return torch.stack(rows)
    return step


def test_beam_search_finds_a_better_caption_that_greedy_misses():
    from catr.decode import beam_search
    # Greedy takes 1 (0.6) then must end weakly (0.4 / 0.3 / 0.3): 0.6 * 0.4 = 0.24.
    # Beam keeps 2 (0.4), after which the end is certain: 0.4 * 0.9 = 0.36.
    table = {(): {1: 0.6, 2: 0.4}, (1,): {9: 0.4, 3: 0.3, 4: 0.3}, (2,): {9: 0.9, 5: 0.1}}
    greedy = beam_search(table_step(table, 10), 0, 9, beam=1, max_len=10, alpha=0.0)
    assert greedy == ([1], True)
    assert beam_search(table_step(table, 10), 0, 9, beam=3, max_len=10, alpha=0.0) == ([2], True)


def test_length_penalty_favours_longer_captions():
    from catr.decode import beam_search, length_penalty
    assert length_penalty(1, 1.0) == 1.0 and length_penalty(7, 0.5) == pytest.approx(math.sqrt(2))
    # A: end at once, log 0.5 = -0.69. B: 1, 3, end: log(0.5 * 0.9 * 0.9) = -0.90 over 3 tokens.
    table = {(): {9: 0.5, 1: 0.5}, (1,): {3: 0.9, 9: 0.1}, (1, 3): {9: 0.9, 4: 0.1}}
    assert beam_search(table_step(table, 10), 0, 9, beam=2, max_len=10, alpha=0.0) == ([], True)
    assert beam_search(table_step(table, 10), 0, 9, beam=2, max_len=10, alpha=1.0) == ([1, 3], True)  # -0.90/1.33


def test_beam_one_is_greedy_and_beams_respect_max_len(full_model, image):
    from catr.decode import beam_decode
    _, x, mask = image
    for max_len in (2, 9):
        ids, ended, _ = greedy_decode(full_model, x, mask, 101, 102, max_len=max_len)
        assert beam_decode(full_model, x, mask, 101, 102, beam=1, max_len=max_len, alpha=0.0)[:2] == (ids, ended)
        assert caption_image(full_model, x, mask, 101, 102, max_len=max_len, beam=1).ids == ids
        beam_ids, beam_ended, _ = beam_decode(full_model, x, mask, 101, 102, beam=3, max_len=max_len)
        assert len(beam_ids) + 1 <= max_len and not beam_ended

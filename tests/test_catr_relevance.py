"""catr/relevance.py and catr/explain.py (with the transformer's AttentionRecord), on tiny random CATRs with the tiny
preset's ConvNet backbone (fast), and on a planted one whose answer is known."""
import sys

import pytest
import torch
from torch import nn

from catr.decode import cross_attention, greedy_decode
from catr.explain import ExplainOptions, explain_maps, occlusion_cell
from catr.relevance import caption_score_fn, caption_sequence, normalised_residual, relevance_maps, token_log_probs
from catr.transformer import AttentionRecord
from catr_tiny import install_fake_explanations, tiny_model
from hw3io import UserError

START, END = 2, 3


@pytest.fixture(scope="module", params=[0, 1], ids=["no-encoder", "one-encoder-layer"])
def case(request):
    """A causal decoder without encoder layers (the tiny preset's shape), and one with an encoder layer: a model,
    an image, its mask, the greedy caption's ids, whether it ended, and its end token: the token the unstopped
    caption emits last for the first time (seed 3: 6 and 7 words before it), so that an <end> tile is explained."""
    model = tiny_model(seed=3, backbone="convnet", enc_layers=request.param)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 90, 140, generator=g) * 2 - 1
    mask = torch.zeros(1, 90, 140, dtype=torch.bool)
    free, _, _ = greedy_decode(model, x, mask, START, -1, max_len=12)
    end = max(free, key=free.index)
    ids, ended, _ = greedy_decode(model, x, mask, START, end, max_len=12)
    assert ended and len(ids) >= 6
    return model, x, mask, ids, ended, end


def sequence(case):
    model, x, mask, ids, ended, end = case
    return caption_sequence(START, end, ids, ended)


def test_recorded_attention_is_the_default_path(case):
    model, x, mask, *_ = case
    seq = torch.tensor([sequence(case)])
    record = AttentionRecord()
    with torch.no_grad():
        memory, fmask, pos, _ = model.encode_image(x, mask)
        logits, heads = model.decode(seq, None, memory, fmask, pos, attn_layer=-1, attn_mode="heads")
        rec_memory, fmask, pos, grid = model.encode_image(x, mask, record)
        rec_logits, _ = model.decode(seq, None, rec_memory, fmask, pos, record=record)
    n_enc, L, S = len(model.transformer.encoder.layers), seq.shape[1], grid[0] * grid[1]
    assert [a.shape for a in record.encoder] == [(1, 4, S, S)] * n_enc
    assert [a.shape for a in record.self_attn] == [(1, 4, L, L)] * 2
    assert [a.shape for a in record.cross_attn] == [(1, 4, L, S)] * 2
    assert torch.allclose(rec_memory, memory, atol=1e-5) and torch.allclose(rec_logits, logits, atol=1e-4)
    assert torch.allclose(record.cross_attn[-1], heads, atol=1e-6)
    assert (record.self_attn[0][0, :, 0, 1:] == 0).all()  # causal: position 0 sees only itself


def test_token_log_probs_are_the_models_teacher_forced_log_softmax(case):
    model, x, mask, ids, ended, end = case
    seq = torch.tensor(sequence(case))
    lp = token_log_probs(model, x, mask, seq)
    assert lp.dtype == torch.float64 and lp.shape == (1, len(ids) + ended)
    with torch.no_grad():
        logits = model(x, mask, seq[None, :-1], None)[0]  # the official call, recomputed from pixels
    assert torch.allclose(lp[0], logits.double().log_softmax(-1)[torch.arange(len(seq) - 1), seq[1:]], atol=1e-5)
    assert logits.argmax(-1).tolist() == seq[1:].tolist()  # greedy decoding chose each position's argmax


def test_caption_score_fn_scores_a_batch_of_perturbed_images(case):
    model, x, mask, ids, ended, _ = case
    score_fn = caption_score_fn(model, mask, sequence(case))
    images = torch.cat([x, torch.zeros_like(x), x])
    scores = score_fn(images)
    assert scores.shape == (3, len(ids) + ended) and scores.dtype == torch.float64
    assert torch.allclose(scores[0], token_log_probs(model, x, mask, sequence(case))[0], atol=1e-6)
    assert torch.allclose(scores[0], scores[2], atol=1e-6)
    assert (scores[0] - scores[1]).abs().max() > 1e-5  # a random tiny CATR hardly looks: small but real changes


def test_relevance_is_finite_and_nonzero_for_every_token(case):
    """With the published normalisation (0/0 rows, then NaN set to 0) every map of both models here is all zero."""
    model, x, mask, ids, ended, _ = case
    maps = relevance_maps(model, x, mask, sequence(case))
    grid = greedy_decode(model, x, mask, START, END, max_len=2)[2][3]
    assert maps.shape == (len(ids) + ended, *grid) and not maps.requires_grad
    assert torch.isfinite(maps).all() and (maps >= 0).all()
    assert (maps.flatten(1).sum(1) > 0).all()


def test_normalised_residual_keeps_rows_never_mixed_as_identity():
    R = torch.eye(3)
    assert torch.equal(normalised_residual(R), torch.eye(3))  # no encoder layer: R_ii = I stays I
    R[2, :2] = torch.tensor([1.0, 3.0])  # only position 2 was mixed
    expected = torch.eye(3)
    expected[2, :2] = torch.tensor([0.25, 0.75])  # where sums are positive, the published rule
    assert torch.equal(normalised_residual(R), expected)


# A planted cross-attention layer. Memory cells a and b; head 0's keys find a, head 1's find b (far more peaked,
# so the head-mean attention peaks at b); head 0 reads the same value at a and b. Only the decisive head's
# output projection reaches the logits.
C, A_CELL, B_CELL = 8, 2, 6


class PlantedBackbone(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.features = features

    def forward(self, images, mask):
        f = self.features
        return f, torch.zeros(1, *f.shape[-2:], dtype=torch.bool), torch.zeros_like(f)


def planted_model(decisive: int):
    model = tiny_model(backbone="convnet", hidden_dim=C, nheads=2, enc_layers=0, dec_layers=1, dim_feedforward=16)
    memory = torch.zeros(C, 9)
    memory[0, A_CELL] = memory[4, B_CELL] = 3.0  # keys: channel 0 for head 0 (channels 0-3), 4 for head 1
    memory[1, A_CELL] = memory[1, B_CELL] = memory[5, B_CELL] = 1.0  # values
    model.backbone, model.input_proj = PlantedBackbone(memory.reshape(1, C, 3, 3)), nn.Identity()
    model.transformer.encoder.norm = nn.Identity()  # the memory is exactly the planted one
    attn = model.transformer.decoder.layers[0].multihead_attn
    with torch.no_grad():
        w, b = attn.in_proj_weight, attn.in_proj_bias
        w.zero_()
        b.zero_()
        b[0], b[4] = 2.0, 10.0  # constant queries: head 0 mildly on a, head 1 sharply on b
        w[C, 0] = w[C + 4, 4] = 1.0
        w[2 * C:] = torch.diag(torch.tensor([0.0, 1, 1, 1, 0, 1, 1, 1]))
        attn.out_proj.weight[:, slice(4, 8) if decisive == 0 else slice(0, 4)] = 0  # the other head is cut off
    return model


def raised_token(model, x, mask, head: int, cell: int) -> int:
    """The token whose log-probability rises most with ``head``'s attention on ``cell``: a decision that this
    attention supports (log-probabilities sum their changes to zero over the vocabulary, so one exists)."""
    record = AttentionRecord()
    memory, fmask, pos, _ = model.encode_image(x, mask, record)
    logp = model.decode(torch.tensor([[START]]), None, memory, fmask, pos, record=record)[0][0, 0].log_softmax(-1)
    grads, = torch.autograd.grad(logp, record.cross_attn[0], torch.eye(len(logp)), is_grads_batched=True)
    return int(grads[:, 0, head, 0, cell].argmax())


@pytest.mark.parametrize("decisive,cell,other", [(0, A_CELL, B_CELL), (1, B_CELL, A_CELL)])
def test_relevance_follows_the_head_that_reaches_the_decision(decisive, cell, other):
    model = planted_model(decisive)
    x, mask = torch.zeros(1, 3, 24, 24), torch.zeros(1, 24, 24, dtype=torch.bool)
    token = raised_token(model, x, mask, decisive, cell)
    with torch.no_grad():
        raw = cross_attention(model, model.encode_image(x, mask), START, [token], False)[0].flatten()
    assert raw.argmax() == B_CELL  # head 1's sharp peak dominates the head mean, whichever head decides
    maps = relevance_maps(model, x, mask, [START, token])[0].flatten()
    assert maps.argmax() == cell and maps[cell] > 10 * maps[other]
    assert (maps[[i for i in range(9) if i not in (A_CELL, B_CELL)]] == 0).all()  # no value there: no gradient


@pytest.fixture
def fake_explanations(monkeypatch):
    return install_fake_explanations(monkeypatch)


def test_explain_maps_gives_every_method_the_attention_maps_shape(case, fake_explanations):
    model, x, mask, ids, ended, end = case
    with torch.no_grad():
        encoded = model.encode_image(x, mask)
    attention = explain_maps("attention", model, x, mask, ids, ended, START, end, encoded=encoded)
    assert torch.equal(attention, cross_attention(model, encoded, START, ids, ended))
    relevance = explain_maps("relevance", model, x, mask, ids, ended, START, end)
    assert torch.equal(relevance, relevance_maps(model, x, mask, caption_sequence(START, end, ids, ended)))
    rise = explain_maps("rise", model, x, mask, ids, ended, START, end, masks=6, cells=3, seed=5)
    occlusion = explain_maps("occlusion", model, x, mask, ids, ended, START, end, cells=2)
    for maps in (relevance, rise, occlusion):
        assert maps.shape == attention.shape and maps.dtype == torch.float32 and torch.isfinite(maps).all()
    rise_call, occlusion_call = fake_explanations.calls
    assert (rise_call["masks"], rise_call["cells"], rise_call["seed"]) == (6, 3, 5)
    assert occlusion_call["cell"] == occlusion_cell((90, 140), 2) == 70
    for call in (rise_call, occlusion_call):
        assert call["image"].shape == (3, 90, 140) and call["valid"].shape == (90, 140) and call["valid"].all()
    assert occlusion.abs().sum() > 0  # hiding half the image moved some token's log-probability


def test_options_fail_before_any_work(monkeypatch):
    with pytest.raises(UserError, match="--explain must be one of"):
        ExplainOptions("gradcam").check()
    with pytest.raises(UserError, match="--masks and --cells"):
        ExplainOptions("rise", masks=0).check()
    for name in ("explanations", "explanations.perturbation"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed: importing it raises ImportError
    with pytest.raises(UserError, match="need the explanations package"):
        ExplainOptions("occlusion").check()
    ExplainOptions("relevance").check()  # needs nothing more
    assert ExplainOptions("rise", masks=7, cells=4, seed=1).meta((90, 140)) == dict(method="rise", masks=7, cells=4,
                                                                                   seed=1)

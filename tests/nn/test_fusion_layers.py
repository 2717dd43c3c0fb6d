"""Fusion layers: shapes, the registry, and what each strategy computes."""

import numpy as np
import pytest
import torch

from skmm import FusionClassifier, ModalityBlocks
from skmm.nn import (
    FUSION_LAYERS,
    FUSION_STRATEGIES,
    AttentionFusion,
    ConcatFusion,
    GatedFusion,
    LateFusion,
    LowRankFusion,
    TensorFusion,
    build_fusion_layer,
)
from skmm.nn._training import make_generator, stochastic_layers

HEADS = {"y": 3, "z": 1}


def _embeddings(n_modalities, batch=6, width=8, seed=0, requires_grad=False):
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, width, generator=generator).requires_grad_(requires_grad)
        for _ in range(n_modalities)
    ]


def _build(name, n_modalities, width=8, **options):
    torch.manual_seed(0)
    return build_fusion_layer(name, n_modalities, width, HEADS, **options)


@pytest.mark.parametrize("n_modalities", [1, 2, 3])
@pytest.mark.parametrize("name", FUSION_STRATEGIES)
def test_output_shape_for_one_to_three_modalities(name, n_modalities):
    layer = _build(name, n_modalities)
    out = layer(_embeddings(n_modalities, batch=5))
    if layer.decision_level:
        assert set(out) == set(HEADS)
        for task, k in HEADS.items():
            assert out[task].shape == (5, k)
    else:
        assert out.shape == (5, 8)


def test_registry_holds_one_class_per_strategy():
    assert FUSION_STRATEGIES == tuple(FUSION_LAYERS)
    assert FUSION_LAYERS == {
        "concat": ConcatFusion,
        "late": LateFusion,
        "gated": GatedFusion,
        "attention": AttentionFusion,
        "tensor": TensorFusion,
        "lowrank": LowRankFusion,
    }
    decision_level = {name for name, cls in FUSION_LAYERS.items() if cls.decision_level}
    assert decision_level == {"late"}


@pytest.mark.parametrize("name", FUSION_STRATEGIES)
def test_every_registry_name_is_an_estimator_fusion_option(name):
    rng = np.random.RandomState(0)
    blocks = ModalityBlocks(
        {"a": rng.normal(size=(24, 3)), "b": rng.normal(size=(24, 2))}
    )
    y = rng.randint(0, 2, size=24)
    clf = FusionClassifier(
        fusion=name, hidden_dim=4, max_epochs=1, device="cpu", random_state=0
    ).fit(blocks, y)
    assert type(clf.net_.module_.fusion) is FUSION_LAYERS[name]


def test_estimator_rejects_a_fusion_outside_the_registry():
    blocks = ModalityBlocks({"a": np.ones((8, 2)), "b": np.ones((8, 2))})
    with pytest.raises(ValueError, match="fusion"):
        FusionClassifier(fusion="bilinear", max_epochs=1, device="cpu").fit(
            blocks, np.arange(8) % 2
        )


def test_estimator_rank_and_tensor_dim_reach_their_layers():
    rng = np.random.RandomState(0)
    blocks = ModalityBlocks(
        {"a": rng.normal(size=(24, 3)), "b": rng.normal(size=(24, 2))}
    )
    y = rng.randint(0, 2, size=24)
    common = dict(hidden_dim=4, max_epochs=1, device="cpu", random_state=0)
    lowrank = FusionClassifier(fusion="lowrank", rank=3, **common).fit(blocks, y)
    assert lowrank.net_.module_.fusion.factors[0].shape[0] == 3
    tensor = FusionClassifier(fusion="tensor", tensor_dim=5, **common).fit(blocks, y)
    assert tensor.net_.module_.fusion.projections[0].out_features == 5
    assert tensor.net_.module_.fusion.linear.in_features == 6**2


def test_build_passes_each_layer_only_its_options():
    options = dict(rank=2, tensor_dim=3, dropout=0.25)
    # Layers that take none of the options still build when given all of them.
    for name in ("concat", "gated"):
        assert isinstance(_build(name, 2, **options), FUSION_LAYERS[name])
    assert _build("lowrank", 2, **options).factors[0].shape[0] == 2
    assert _build("tensor", 2, **options).projections[0].out_features == 3
    attention = _build("attention", 2, **options)
    assert attention.encoder.layers[0].dropout.p == 0.25
    late = _build("late", 2, **options)
    assert late.hidden[0][2].p == 0.25
    assert set(late.heads[0]) == set(HEADS)


def test_build_gives_head_sizes_to_decision_level_layers_only():
    calls = {}

    class Recorder(torch.nn.Module):
        options = ()

        def __init__(self, *args, **kwargs):
            super().__init__()
            calls[self.decision_level] = kwargs

    class Shared(Recorder):
        decision_level = False

    class Decision(Recorder):
        decision_level = True

    registry = dict(FUSION_LAYERS)
    try:
        FUSION_LAYERS.update(shared=Shared, decision=Decision)
        build_fusion_layer("shared", 2, 8, HEADS, dropout=0.5)
        build_fusion_layer("decision", 2, 8, HEADS, dropout=0.5)
    finally:
        FUSION_LAYERS.clear()
        FUSION_LAYERS.update(registry)
    assert calls == {False: {}, True: {"head_sizes": HEADS}}


def test_unknown_strategy_error_lists_the_options():
    with pytest.raises(ValueError, match="'bilinear'") as info:
        build_fusion_layer("bilinear", 2, 8, HEADS)
    for name in FUSION_STRATEGIES:
        assert repr(name) in str(info.value)


def test_gated_fusion_gates_and_formula():
    layer = _build("gated", 3)
    embeddings = _embeddings(3, batch=5)
    z = layer.gates(embeddings)
    assert z.shape == (5, 3, 8)
    assert ((z > 0) & (z < 1)).all()
    h_m = [torch.tanh(t(v)) for t, v in zip(layer.transforms, embeddings)]
    expected = sum(z[:, m] * h_m[m] for m in range(3))
    torch.testing.assert_close(layer(embeddings), expected)
    # The gates are per sample: they depend on the row.
    assert not torch.allclose(z[0], z[1])


def test_late_fusion_is_the_weighted_sum_of_per_modality_heads():
    layer = _build("late", 3)
    with torch.no_grad():
        layer.alpha.copy_(torch.tensor([0.5, -1.0, 2.0]))
    w = layer.modality_weights()
    torch.testing.assert_close(w.sum(), torch.tensor(1.0))
    assert (w > 0).all() and len(set(w.tolist())) == 3
    embeddings = _embeddings(3)
    out = layer(embeddings)
    for task in HEADS:
        expected = sum(
            w[m] * layer.heads[m][task](layer.hidden[m](embeddings[m]))
            for m in range(3)
        )
        torch.testing.assert_close(out[task], expected)


def test_tensor_fusion_keeps_the_unimodal_terms():
    layer = _build("tensor", 2, tensor_dim=4)
    with torch.no_grad():
        for projection in layer.projections:
            projection.bias.zero_()
    # The other modality projects to zero: a pure bimodal product would vanish
    # and leave h independent of the first modality; the appended 1 keeps it.
    zero = torch.zeros(6, 8)
    first, second = _embeddings(2)
    inputs = []
    layer.linear.register_forward_hook(lambda mod, args, out: inputs.append(args[0]))
    layer([first, zero])
    layer([second, zero])
    assert not torch.allclose(inputs[0], inputs[1])
    layer([zero, first])
    layer([zero, second])
    assert not torch.allclose(inputs[2], inputs[3])


def test_lowrank_fusion_does_not_vanish_with_many_modalities():
    stds = {}
    for m in (1, 4):
        layer = _build("lowrank", m, width=16)
        with torch.no_grad():
            h = layer(_embeddings(m, batch=64, width=16))
        stds[m] = float(h.std())
    assert stds[4] > 0.1
    assert stds[4] > 0.2 * stds[1]


def test_attention_fusion_tells_modalities_apart_by_their_embeddings():
    layer = _build("attention", 2).eval()
    a, b = _embeddings(2)
    assert not torch.allclose(layer([a, b]), layer([b, a]))
    with torch.no_grad():
        layer.modality_embedding.zero_()
    # Without the modality embeddings the mean-pooled tokens are a set.
    torch.testing.assert_close(layer([a, b]), layer([b, a]))


def test_attention_fusion_reduces_heads_to_a_divisor_of_the_width():
    layer = AttentionFusion(2, 8, 6, n_heads=4)
    assert layer.encoder.layers[0].self_attn.num_heads == 3
    assert layer(_embeddings(2)).shape == (6, 6)


def test_attention_dropout_draws_from_the_fit_generator():
    layer = _build("attention", 2, dropout=0.5).train()
    embeddings = _embeddings(2)
    outputs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        with stochastic_layers(make_generator(0)):
            outputs.append(layer(embeddings))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    with stochastic_layers(make_generator(1)):
        assert not torch.allclose(layer(embeddings), outputs[0])


@pytest.mark.parametrize("name", FUSION_STRATEGIES)
def test_gradients_reach_every_modality(name):
    layer = _build(name, 3)
    embeddings = _embeddings(3, batch=16, requires_grad=True)
    out = layer(embeddings)
    total = sum(o.sum() for o in out.values()) if isinstance(out, dict) else out.sum()
    total.backward()
    for m, v in enumerate(embeddings):
        assert v.grad is not None and v.grad.abs().sum() > 0, f"modality {m} silent"

"""FusionNetwork: missing rows, input scaling, embeddings, gates and groups."""

import fnmatch

import numpy as np
import pytest
import torch
from torch import nn

from skmm import BlockSpec
from skmm.nn import FusionNetwork
from skmm.nn._fusion_network import InputScaler, missing_rows
from skmm.nn._training import make_generator, stochastic_layers

DENSE = {"a": BlockSpec("dense", 3), "b": BlockSpec("dense", 2)}
TOKENS = BlockSpec("tokens", 5, vocab_size=10, padding_idx=1)


def _blocks(n=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        "a": torch.randn(n, 3, generator=generator),
        "b": torch.randn(n, 2, generator=generator),
    }


def _network(specs=DENSE, seed=0, **params):
    torch.manual_seed(seed)
    return FusionNetwork(specs, {"y": 2}, hidden_dim=8, **params)


def test_missing_rows_are_all_zeros_or_all_padding():
    dense = torch.tensor([[0.0, 0.0], [0.0, 1e-6], [2.0, 0.0]])
    assert missing_rows(dense, DENSE["b"]).tolist() == [True, False, False]
    ids = torch.tensor([[1, 1, 1, 1, 1], [3, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    # For tokens the padding id counts, not zero.
    assert missing_rows(ids, TOKENS).tolist() == [True, False, False]
    images = torch.zeros(3, 1, 2, 2)
    images[2, 0, 1, 1] = 0.5
    spec = BlockSpec("image", 4, image_shape=(1, 2, 2))
    assert missing_rows(images, spec).tolist() == [True, True, False]


def test_missing_token_row_gets_the_learned_missing_embedding():
    specs = {"a": DENSE["a"], "t": TOKENS}
    network = _network(specs).eval()
    with torch.no_grad():
        network.missing.normal_()
    ids = torch.tensor([[2, 3, 4, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    a = torch.randn(3, 3)
    a[2] = 0.0
    with torch.no_grad():
        emb_a, emb_t = network.embed(a=a, t=ids)
    torch.testing.assert_close(emb_t[1], network.missing[1])
    torch.testing.assert_close(emb_a[2], network.missing[0])
    for row in (0, 2):
        assert not torch.allclose(emb_t[row], network.missing[1])


def test_without_missing_embeddings_a_missing_row_goes_through_its_tower():
    network = _network(missing_embeddings=False).eval()
    assert network.missing is None
    blocks = _blocks(3)
    blocks["a"][0] = 0.0
    with torch.no_grad():
        emb = network.embed(**blocks)[0]
        expected = network.norms["a"](network.towers["a"](blocks["a"]))
    torch.testing.assert_close(emb, expected)


def test_modality_dropout_replaces_rows_in_training_only():
    network = _network(modality_dropout=1.0)
    with torch.no_grad():
        network.missing.normal_()
    blocks = _blocks()
    with torch.no_grad(), stochastic_layers(make_generator(0)):
        emb = network.train().embed(**blocks)
        for m in range(2):
            torch.testing.assert_close(emb[m], network.missing[m].expand(6, 8))
        emb = network.eval().embed(**blocks)
    for m in range(2):
        assert not torch.allclose(emb[m][0], network.missing[m])


def test_input_scaler_applies_shift_and_scale():
    scaler = InputScaler(np.array([1.0, -2.0]), np.array([2.0, 4.0]))
    X = torch.tensor([[3.0, 2.0], [1.0, -2.0]])
    torch.testing.assert_close(scaler(X), torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    assert scaler.shift.dtype == torch.float32
    assert set(scaler.state_dict()) == {"shift", "scale"}


def test_input_stats_scale_only_their_blocks_and_are_saved():
    shift, scale = np.array([1.0, 2.0, 3.0]), np.array([10.0, 0.5, 2.0])
    scaled = _network(input_stats={"a": (shift, scale)}).eval()
    plain = _network().eval()
    assert set(scaled.scalers) == {"a"}
    assert {"scalers.a.shift", "scalers.a.scale"} <= set(scaled.state_dict())
    blocks = _blocks()
    with torch.no_grad():
        got = scaled.embed(**blocks)
        expected = plain.embed(
            a=(blocks["a"] - torch.tensor(shift).float()) / torch.tensor(scale).float(),
            b=blocks["b"],
        )
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
    # The statistics travel with the state dict into a fresh network.
    fresh = _network(input_stats={"a": (np.zeros(3), np.ones(3))}, seed=1)
    fresh.load_state_dict(scaled.state_dict())
    torch.testing.assert_close(fresh.scalers["a"].scale, scaled.scalers["a"].scale)


def test_missing_rows_are_found_before_scaling():
    # A shift turns an all-zero row into a non-zero one; it is still missing.
    network = _network(input_stats={"a": (np.ones(3), np.ones(3))}).eval()
    blocks = _blocks(3)
    blocks["a"][1] = 0.0
    with torch.no_grad():
        emb = network.embed(**blocks)[0]
    torch.testing.assert_close(emb[1], network.missing[0])


def test_gates_needs_a_gated_network():
    with pytest.raises(ValueError, match="gated"):
        _network(fusion="concat").gates(**_blocks())
    network = _network(fusion="gated").eval()
    blocks = _blocks(5)
    with torch.no_grad():
        gates = network.gates(**blocks)
        full = network.fusion.gates(network.embed(**blocks))
    assert gates.shape == (5, 2)
    assert ((gates > 0) & (gates < 1)).all()
    torch.testing.assert_close(gates, full.mean(dim=2))


def test_param_groups_select_the_tower_parameters_of_each_modality():
    specs = {
        "img[1]": BlockSpec("dense", 4, tower=lambda: nn.Linear(4, 6), tower_dim=6),
        "img1": BlockSpec("dense", 4, tower=lambda: nn.Linear(4, 6), tower_dim=6),
    }
    network = _network(specs)
    groups = network.param_groups({"img[1]": 1e-4})
    assert len(groups) == 1
    pattern, options = groups[0]
    assert options == {"lr": 1e-4}
    selected = {n for n, _ in network.named_parameters() if fnmatch.fnmatch(n, pattern)}
    # The encoder's own network, not the projection after it nor the other
    # modality that a bracket read as a character class would match.
    assert selected == {"towers.img[1].tower.weight", "towers.img[1].tower.bias"}


@pytest.mark.parametrize("fusion", ["concat", "gated", "attention", "lowrank"])
def test_represent_is_the_input_of_the_heads(fusion):
    network = _network(fusion=fusion).eval()
    blocks = _blocks(4)
    with torch.no_grad():
        h = network.represent(**blocks)
        torch.testing.assert_close(network.heads["y"](h), network(**blocks)["y"])
    assert h.shape == (4, 8)


def test_represent_raises_for_late_fusion():
    network = _network(fusion="late")
    with pytest.raises(ValueError, match="'late'"):
        network.represent(**_blocks())
    assert set(network(**_blocks())) == {"y"}


def test_embedding_norm_brings_every_tower_to_one_scale():
    embeddings = {}
    for norm in (True, False):
        for factor in (1.0, 1e3):
            network = _network(embedding_norm=norm).eval()
            with torch.no_grad():
                # ReLU is positively homogeneous: the tower's output scales too.
                linear = network.towers["a"].layers[0]
                linear.weight.mul_(factor)
                linear.bias.mul_(factor)
                embeddings[norm, factor] = network.embed(**_blocks())[0]
    torch.testing.assert_close(
        embeddings[True, 1e3], embeddings[True, 1.0], rtol=1e-3, atol=1e-3
    )
    torch.testing.assert_close(embeddings[False, 1e3], 1e3 * embeddings[False, 1.0])
    assert embeddings[False, 1e3].abs().max() > 10


def test_alignment_loss_is_returned_in_training_only():
    network = _network(alignment_weight=0.5).train()
    out = network(**_blocks(8))
    assert set(out) == {"y", "_alignment"}
    assert out["_alignment"].ndim == 0 and out["_alignment"] > 0
    assert set(network.eval()(**_blocks(8))) == {"y"}
    single = _network({"a": DENSE["a"]}, alignment_weight=0.5).train()
    assert set(single(a=_blocks(8)["a"])) == {"y"}

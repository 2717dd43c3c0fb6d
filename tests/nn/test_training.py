"""Seeding, per-fit random streams, the training loop and the inference loop."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from skmm import FusionClassifier, ModalityBlocks
from skmm.nn._training import (
    Dropout,
    fit_seeds,
    make_generator,
    rand,
    run_in_batches,
    seeded_init,
    stochastic_layers,
    train_loop,
)


def test_fit_seeds_follow_random_state():
    assert fit_seeds(0, 3) == fit_seeds(0, 3)
    assert fit_seeds(0) != fit_seeds(1)
    seeds = fit_seeds(0, 3)
    assert len(seeds) == 3 and len(set(seeds)) == 3
    assert all(isinstance(s, int) and 0 <= s < 2**31 - 1 for s in seeds)
    # A RandomState instance is drawn from, as in scikit-learn.
    rng = np.random.RandomState(0)
    assert fit_seeds(rng) == fit_seeds(0)
    assert fit_seeds(rng) != fit_seeds(0)


def test_seeded_init_gives_the_seeds_weights_and_keeps_the_callers_rng():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with seeded_init(7):
        first = nn.Linear(4, 3)
    with seeded_init(7):
        second = nn.Linear(4, 3)
    with seeded_init(8):
        other = nn.Linear(4, 3)
    torch.testing.assert_close(first.weight, second.weight, rtol=0, atol=0)
    assert not torch.allclose(first.weight, other.weight)
    # The caller's stream goes on as if nothing had been drawn.
    torch.testing.assert_close(torch.rand(3), expected_next, rtol=0, atol=0)


def test_make_generator_is_seeded():
    a = torch.rand(4, generator=make_generator(5))
    b = torch.rand(4, generator=make_generator(5))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert make_generator(5).device.type == "cpu"


def test_dropout_is_identity_in_eval_mode_and_without_p():
    X = torch.randn(10, 20)
    assert torch.equal(Dropout(0.5).eval()(X), X)
    assert torch.equal(Dropout(0.0).train()(X), X)
    assert "p=0.3" in repr(Dropout(0.3))


def test_dropout_masks_follow_the_current_generator():
    X = torch.ones(50, 40)
    layer = Dropout(0.25).train()
    outputs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        with stochastic_layers(make_generator(0)):
            outputs.append(layer(X))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    with stochastic_layers(make_generator(1)):
        assert not torch.equal(layer(X), outputs[0])
    # Kept units are rescaled so the expectation is unchanged.
    torch.testing.assert_close(outputs[0].unique(), torch.tensor([0.0, 1 / 0.75]))
    assert 0.2 < float((outputs[0] == 0).float().mean()) < 0.3


def test_dropout_and_rand_fall_back_to_the_global_generator():
    X = torch.ones(8, 8)
    layer = Dropout(0.5).train()
    torch.manual_seed(0)
    first = (layer(X), rand(5, "cpu"))
    torch.manual_seed(0)
    second = (layer(X), rand(5, "cpu"))
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_stochastic_layers_nest_and_stay_in_their_thread():
    reference = torch.rand(6, generator=make_generator(0))
    outer = make_generator(0)
    with stochastic_layers(outer):
        first = rand(3, "cpu")
        with stochastic_layers(make_generator(9)):
            rand(3, "cpu")
        second = rand(3, "cpu")
        state = outer.get_state()
        thread = threading.Thread(target=rand, args=(100, "cpu"))
        thread.start()
        thread.join()
        assert torch.equal(outer.get_state(), state)
    torch.testing.assert_close(torch.cat([first, second]), reference, rtol=0, atol=0)


def _regression(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=generator)
    y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.5
    return X, y


def _small_training(seed):
    """Build a model with dropout and train it: weights from the seed alone."""
    X, y = _regression()
    with seeded_init(seed):
        model = nn.Sequential(
            nn.Linear(4, 16), nn.ReLU(), Dropout(0.3), nn.Linear(16, 1)
        )
    with stochastic_layers(make_generator(seed)):
        train_loop(
            model.parameters(),
            lambda rows: ((model(X[rows])[:, 0] - y[rows]) ** 2).mean(),
            len(X),
            max_epochs=10,
            batch_size=8,
            lr=1e-2,
            generator=make_generator(seed),
        )
    return [p.detach().clone() for p in model.parameters()]


def test_parallel_fits_draw_the_same_numbers_as_sequential_fits():
    seeds = (11, 12)
    sequential = []
    for global_seed, seed in zip((0, 1), seeds):
        torch.manual_seed(global_seed)
        sequential.append(_small_training(seed))
    with ThreadPoolExecutor(max_workers=2) as pool:
        parallel = list(pool.map(_small_training, seeds))
    for seq, par in zip(sequential, parallel):
        for a, b in zip(seq, par):
            assert torch.equal(a, b)
    assert not torch.equal(sequential[0][0], sequential[1][0])


def test_train_loop_decreases_the_loss_and_reports_each_epoch():
    X, y = _regression()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    calls = []
    losses = train_loop(
        model.parameters(),
        lambda rows: ((model(X[rows])[:, 0] - y[rows]) ** 2).mean(),
        len(X),
        max_epochs=40,
        batch_size=16,
        lr=5e-2,
        generator=make_generator(0),
        on_epoch=lambda epoch, loss: calls.append((epoch, loss)),
    )
    assert len(losses) == 40
    assert calls == list(enumerate(losses))
    assert losses[-1] < 0.05 * losses[0]


def test_train_loop_skips_small_batches_and_averages_over_rows_seen():
    sizes = []

    def batch_loss(rows):
        sizes.append(len(rows))
        return weight.sum() * 0 + float(len(rows))

    weight = nn.Parameter(torch.zeros(1))
    losses = train_loop(
        [weight],
        batch_loss,
        10,
        max_epochs=2,
        batch_size=4,
        lr=0.1,
        generator=make_generator(0),
        min_batch=3,
    )
    assert sizes == [4, 4, 4, 4]
    assert losses == [4.0, 4.0]
    nothing = train_loop(
        [weight],
        batch_loss,
        2,
        max_epochs=1,
        batch_size=4,
        lr=0.1,
        generator=make_generator(0),
        min_batch=3,
    )
    assert np.isnan(nothing[0])


def test_train_loop_shuffles_from_its_generator():
    orders = []
    for _ in range(2):
        seen = []
        weight = nn.Parameter(torch.zeros(1))

        def batch_loss(rows, seen=seen, weight=weight):
            seen.append(rows.tolist())
            return weight.sum()

        train_loop(
            [weight],
            batch_loss,
            12,
            max_epochs=2,
            batch_size=5,
            lr=0.1,
            generator=make_generator(3),
        )
        orders.append(seen)
    assert orders[0] == orders[1]
    first_epoch = sum(orders[0][:3], [])
    assert sorted(first_epoch) == list(range(12)) and first_epoch != list(range(12))


def test_run_in_batches_covers_the_rows_in_order_without_autograd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), Dropout(0.5)).train()
    X = torch.randn(11, 3)
    slices = []

    def step(rows):
        slices.append(rows)
        assert not torch.is_grad_enabled()
        assert not model.training
        return model(X[rows])

    outputs = run_in_batches(step, 11, 4, modules=[model])
    assert slices == [slice(0, 4), slice(4, 8), slice(8, 11)]
    assert not any(out.requires_grad for out in outputs)
    with torch.no_grad():
        expected = model(X)
    torch.testing.assert_close(torch.cat(outputs), expected)


def _fit_classifier(random_state):
    rng = np.random.RandomState(0)
    blocks = ModalityBlocks(
        {"a": rng.normal(size=(96, 3)), "b": rng.normal(size=(96, 2))}
    )
    y = (blocks["a"][:, 0] + blocks["b"][:, 1] > 0).astype(int)
    clf = FusionClassifier(
        hidden_dim=8,
        max_epochs=15,
        batch_size=16,
        dropout=0.2,
        modality_dropout=0.1,
        device="cpu",
        random_state=random_state,
    ).fit(blocks, y)
    return clf.predict_proba(blocks)


def test_estimators_fitted_in_parallel_threads_match_sequential_fits():
    torch.manual_seed(0)
    sequential = [_fit_classifier(0), _fit_classifier(1)]
    torch.manual_seed(1)
    with ThreadPoolExecutor(max_workers=2) as pool:
        parallel = list(pool.map(_fit_classifier, [0, 1]))
    for seq, par in zip(sequential, parallel):
        np.testing.assert_array_equal(seq, par)
    assert not np.array_equal(sequential[0], sequential[1])

"""BlockDataset, BatchIterator and the input statistics of the training rows."""

import numpy as np
import pytest
import torch
from scipy import sparse
from torch import nn

from skmm import BlockSpec, ModalityBlocks
from skmm.nn._data import BatchIterator, BlockDataset, input_statistics


def _indexed(n=23):
    # Column 0 holds the row number, so a batch tells which rows it holds.
    X = np.c_[np.arange(n, dtype=float), np.ones(n)]
    return BlockDataset(ModalityBlocks({"X": X}), {"y": np.arange(n)})


def _rows(iterator):
    return [Xb["X"][:, 0].long().tolist() for Xb, _ in iterator]


def test_shuffled_epoch_yields_every_row_once():
    data = _indexed()
    iterator = BatchIterator(
        data, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    assert len(iterator) == 5
    for _ in range(2):
        batches = _rows(iterator)
        assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
        rows = sum(batches, [])
        assert sorted(rows) == list(range(23))
        assert rows != list(range(23))
    for Xb, yb in iterator:
        np.testing.assert_array_equal(Xb["X"][:, 0].long(), yb["y"])


def test_shuffling_follows_the_generator_seed():
    def order(seed, epochs=2):
        generator = torch.Generator().manual_seed(seed)
        iterator = BatchIterator(_indexed(), 4, shuffle=True, generator=generator)
        return [_rows(iterator) for _ in range(epochs)]

    torch.manual_seed(1)
    first = order(0)
    torch.manual_seed(2)
    assert order(0) == first
    # A new permutation at each pass, and another one for another seed.
    assert first[0] != first[1]
    assert order(1) != first


def test_without_shuffling_batches_are_consecutive_rows():
    rows = _rows(BatchIterator(_indexed(10), 4))
    assert rows == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_batches_are_copies_of_the_callers_arrays():
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    data = BlockDataset(ModalityBlocks({"X": X}))
    for shuffle in (False, True):
        for Xb, _ in BatchIterator(data, 3, shuffle=shuffle):
            Xb["X"].zero_()
    np.testing.assert_array_equal(X, np.arange(12).reshape(6, 2))


def test_sparse_blocks_stay_sparse_and_batches_are_dense():
    rng = np.random.RandomState(0)
    S = sparse.random(20, 7, density=0.2, format="csr", random_state=rng)
    data = BlockDataset(ModalityBlocks({"s": S, "d": rng.normal(size=(20, 2))}))
    assert sparse.issparse(data.X["s"])
    assert isinstance(data.X["d"], torch.Tensor)
    generator = torch.Generator().manual_seed(0)
    seen = 0
    for Xb, _ in BatchIterator(data, 6, shuffle=True, generator=generator):
        assert isinstance(Xb["s"], torch.Tensor) and Xb["s"].layout == torch.strided
        assert Xb["s"].dtype == torch.float32 and Xb["s"].shape[1] == 7
        seen += len(Xb["s"])
    assert seen == 20
    rows = torch.tensor([3, 0, 17])
    Xb, _ = data.batch(rows)
    np.testing.assert_allclose(Xb["s"].numpy(), S[[3, 0, 17]].toarray(), rtol=1e-6)
    Xb, _ = data.batch(slice(2, 5))
    np.testing.assert_allclose(Xb["s"].numpy(), S[2:5].toarray(), rtol=1e-6)


def test_subset_keeps_the_rows_of_every_block_and_target():
    rng = np.random.RandomState(0)
    S = sparse.random(10, 4, density=0.5, format="csr", random_state=rng)
    D = rng.normal(size=(10, 3))
    y = rng.randint(0, 3, size=10)
    w = rng.uniform(size=10)
    data = BlockDataset(ModalityBlocks({"s": S, "d": D}), {"y": y}, sample_weight=w)
    idx = [7, 2, 2, 9]
    sub = data.subset(idx)
    assert len(sub) == 4
    assert sparse.issparse(sub.X["s"])
    Xb, yb = sub.batch(slice(0, 4))
    np.testing.assert_allclose(Xb["s"].numpy(), S[idx].toarray(), rtol=1e-6)
    np.testing.assert_allclose(Xb["d"].numpy(), D[idx], rtol=1e-6)
    np.testing.assert_array_equal(yb["y"].numpy(), y[idx])
    np.testing.assert_allclose(yb["sample_weight"].numpy(), w[idx], rtol=1e-6)


def test_targets_and_blocks_get_the_dtypes_of_their_kind():
    blocks = ModalityBlocks(
        {"ids": np.array([[2, 3], [4, 0]]), "img": np.zeros((2, 12))},
        {
            "ids": BlockSpec("tokens", 2, vocab_size=5),
            "img": BlockSpec("image", 12, image_shape=(3, 2, 2)),
        },
    )
    targets = {"label": np.array([True, False]), "value": np.array([1, 2.5])}
    data = BlockDataset(blocks, targets)
    assert data.X["ids"].dtype == torch.int64
    assert data.X["img"].shape == (2, 3, 2, 2)
    assert data.y["label"].dtype == torch.int64
    assert data.y["value"].dtype == torch.float32
    Xb, yb = data[1]
    assert Xb["ids"].tolist() == [[4, 0]] and yb["value"].tolist() == [2.5]


def test_dense_statistics_come_from_the_rows_with_data():
    rng = np.random.RandomState(0)
    X = rng.normal(loc=5.0, scale=3.0, size=(50, 3))
    X[:, 2] = 7.0
    X[::5] = 0.0
    data = BlockDataset(ModalityBlocks({"X": X}))
    (shift, scale) = input_statistics(data, {"X": BlockSpec("dense", 3)})["X"]
    present = X[(X != 0).any(axis=1)]
    np.testing.assert_allclose(shift, present.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(scale[:2], present[:, :2].std(axis=0), rtol=1e-5)
    # A constant column is shifted to zero, not divided by a zero spread.
    assert scale[2] == 1.0


def test_sparse_statistics_scale_by_the_rms_row_norm():
    rng = np.random.RandomState(0)
    counts = sparse.random(40, 9, density=0.3, format="csr", random_state=rng) * 20
    counts = counts.tolil()
    counts[:4] = 0
    counts = counts.tocsr()
    data = BlockDataset(ModalityBlocks({"s": counts}))
    shift, scale = input_statistics(data, {"s": BlockSpec("dense", 9)})["s"]
    norms = np.linalg.norm(counts.toarray(), axis=1)
    rms = np.sqrt(np.mean(norms[norms > 0] ** 2))
    np.testing.assert_array_equal(shift, [0.0])
    np.testing.assert_allclose(scale, [rms], rtol=1e-5)


def test_statistics_skip_images_tokens_and_encoder_towers():
    rng = np.random.RandomState(0)
    blocks = {
        "dense": rng.normal(size=(8, 2)),
        "ids": rng.randint(1, 5, size=(8, 3)),
        "img": rng.normal(size=(8, 4)),
        "emb": rng.normal(size=(8, 2)),
    }
    specs = {
        "dense": BlockSpec("dense", 2),
        "ids": BlockSpec("tokens", 3, vocab_size=5),
        "img": BlockSpec("image", 4, image_shape=(1, 2, 2)),
        "emb": BlockSpec("dense", 2, tower=lambda: nn.Identity(), tower_dim=2),
    }
    data = BlockDataset(ModalityBlocks(blocks, specs))
    assert set(input_statistics(data, specs)) == {"dense"}


@pytest.mark.parametrize("n", [1, 4])
def test_len_counts_a_last_partial_batch(n):
    assert len(BatchIterator(_indexed(n), batch_size=4)) == 1

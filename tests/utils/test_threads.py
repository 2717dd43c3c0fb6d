"""torch's thread count during the fits and predictions of the fusion estimators."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from skmm import BlockSpec, FusionClassifier, ModalityBlocks
from skmm.utils._threads import default_n_threads, torch_threads


class _RecordThreads(Callback):
    """Record torch's thread count at the start of every epoch."""

    def __init__(self, seen):
        self.seen = seen

    def on_epoch_begin(self, net, **kwargs):
        self.seen.append(torch.get_num_threads())


@pytest.fixture
def two_threads():
    """Start from two torch threads (the session runs on one) and restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _image_blocks(n=40):
    rng = np.random.RandomState(0)
    pixels = rng.normal(size=(n, 3 * 8 * 8)).astype(np.float32)
    spec = BlockSpec("image", pixels.shape[1], image_shape=(3, 8, 8))
    return ModalityBlocks({"image": pixels}, {"image": spec}), rng.randint(0, 2, n)


def _threads_in_predict(model, X):
    seen = []
    model.net_.module_.register_forward_hook(
        lambda *args: seen.append(torch.get_num_threads())
    )
    model.predict(X)
    return set(seen)


def test_a_network_of_feature_towers_fits_and_predicts_on_one_thread(two_threads):
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(60, 4)), rng.randint(0, 2, 60)
    seen = []
    clf = FusionClassifier(
        max_epochs=2, device="cpu", callbacks=[_RecordThreads(seen)], random_state=0
    ).fit(X, y)

    assert seen == [1, 1]
    assert _threads_in_predict(clf, X) == {1}
    assert torch.get_num_threads() == 2


def test_n_threads_overrides_the_default_and_is_restored(two_threads):
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(60, 4)), rng.randint(0, 2, 60)
    seen = []
    clf = FusionClassifier(
        max_epochs=1,
        n_threads=3,
        device="cpu",
        callbacks=[_RecordThreads(seen)],
        random_state=0,
    ).fit(X, y)
    assert seen == [3]
    assert _threads_in_predict(clf, X) == {3}
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="n_threads"):
        clf.set_params(n_threads=0).fit(X, y)


def test_the_threads_are_restored_when_a_fit_fails(two_threads):
    X = np.array([[0.0], [1.0], [np.nan]])
    with pytest.raises(ValueError):
        FusionClassifier(n_threads=1, device="cpu").fit(X, [0, 1, 0])
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError
    assert torch.get_num_threads() == 2


def test_an_image_tower_shares_the_threads_a_worker_allows(two_threads, monkeypatch):
    blocks, y = _image_blocks()
    assert default_n_threads(blocks.specs) == min(2, _physical_cores())
    # In a joblib or Dask worker, OMP_NUM_THREADS has lowered torch's count
    # before the fit: it is not raised again.
    torch.set_num_threads(1)
    assert default_n_threads(blocks.specs) == 1
    monkeypatch.setattr("skmm.utils._threads.cpu_count", lambda **kwargs: 1)
    torch.set_num_threads(2)
    assert default_n_threads(blocks.specs) == 1

    seen = []
    FusionClassifier(
        max_epochs=1, device="cpu", callbacks=[_RecordThreads(seen)], random_state=0
    ).fit(blocks, y)
    assert seen == [1]


def _physical_cores():
    from joblib import cpu_count

    return cpu_count(only_physical_cores=True)

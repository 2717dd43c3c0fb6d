"""torch's thread count during the fits and predictions of the estimators."""

import numpy as np
import pandas as pd
import pytest
import torch
from skorch.callbacks import Callback
from torch import nn

from skmm import BlockSpec, CrossModalAligner, FusionClassifier, ModalityBlocks
from skmm.encoders import CNNImageEncoder, PretrainedImageEncoder
from skmm.nn._towers import ConvTower
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


# -- encoders ------------------------------------------------------------------


@pytest.fixture
def conv_threads(monkeypatch):
    """Record torch's thread count in every forward pass of a CNN tower."""
    seen = []
    forward = ConvTower.forward

    def recording_forward(self, x):
        seen.append(torch.get_num_threads())
        return forward(self, x)

    monkeypatch.setattr(ConvTower, "forward", recording_forward)
    return seen


def _images(n=24):
    rng = np.random.RandomState(0)
    cells = [rng.randint(0, 256, (10, 10, 3), dtype=np.uint8) for _ in range(n)]
    return pd.DataFrame({"image": pd.Series(cells, dtype=object)}), np.arange(n) % 2


def test_cnn_encoder_computes_on_the_shared_threads_and_restores_them(
    two_threads, conv_threads
):
    X, y = _images()
    encoder = CNNImageEncoder(
        image_size=8, channels=(4,), max_epochs=1, cache=False, random_state=0
    ).fit(X, y)
    assert torch.get_num_threads() == 2
    n_fit = len(conv_threads)
    encoder.transform(X)
    assert torch.get_num_threads() == 2
    # Training, the feature statistics, then transform all ran the network.
    assert n_fit > 0 and len(conv_threads) > n_fit
    assert set(conv_threads) == {min(2, _physical_cores())}


def test_cnn_encoder_does_not_raise_a_lowered_thread_count(conv_threads):
    X, y = _images()
    before = torch.get_num_threads()
    # As OMP_NUM_THREADS=1 leaves it in a joblib or Dask worker.
    torch.set_num_threads(1)
    try:
        encoder = CNNImageEncoder(image_size=8, channels=(4,), cache=False).fit(X)
        encoder.transform(X)
        assert set(conv_threads) == {1}
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_encoder_n_threads_overrides_the_default_and_is_checked(
    two_threads, conv_threads
):
    X, y = _images()
    encoder = CNNImageEncoder(image_size=8, channels=(4,), n_threads=3, cache=False)
    encoder.fit(X, y).transform(X)
    assert set(conv_threads) == {3}
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="n_threads"):
        encoder.set_params(n_threads=0).fit(X)


class _RecordingConv(nn.Module):
    """A small network that records torch's thread count in each forward pass."""

    seen = []

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        _RecordingConv.seen.append(torch.get_num_threads())
        return self.conv(x)


def test_pretrained_image_encoder_computes_on_the_shared_threads(two_threads):
    X, _ = _images(6)
    _RecordingConv.seen = []
    encoder = PretrainedImageEncoder(_RecordingConv, image_size=8, cache=False)
    encoder.fit(X).transform(X)
    assert set(_RecordingConv.seen) == {min(2, _physical_cores())}
    assert torch.get_num_threads() == 2
    _RecordingConv.seen = []
    torch.set_num_threads(1)
    encoder.transform(X)
    assert set(_RecordingConv.seen) == {1}
    assert torch.get_num_threads() == 1


def test_sentence_encoder_embeds_on_the_shared_threads(two_threads):
    pytest.importorskip("sentence_transformers")
    from skmm.encoders import SentenceTextEncoder

    X = pd.DataFrame({"text": ["a red dress", "interest rates rose"]})
    encoder = SentenceTextEncoder(cache=False).fit(X)
    seen = []
    encode = encoder._model.encode

    def recording_encode(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return encode(*args, **kwargs)

    encoder._model.encode = recording_encode
    encoder.transform(X)
    torch.set_num_threads(1)
    encoder.transform(X)
    assert seen == [min(2, _physical_cores()), 1]
    assert torch.get_num_threads() == 1


def test_aligner_trains_and_projects_on_one_thread_unless_told(
    two_threads, monkeypatch
):
    seen = []

    class Recording(nn.Linear):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return super().forward(x)

    monkeypatch.setattr(
        "skmm._alignment._make_projection",
        lambda n_features, n_components, hidden_dim: Recording(
            n_features, n_components
        ),
    )
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 6))
    aligner = CrossModalAligner(n_components=2, max_epochs=2, random_state=0)
    aligner.fit(X).transform(X)
    assert set(seen) == {1}
    assert torch.get_num_threads() == 2
    seen.clear()
    aligner.set_params(n_threads=3).fit(X).transform_modality(X[:, :3], 0)
    assert set(seen) == {3}
    assert torch.get_num_threads() == 2

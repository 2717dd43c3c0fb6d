"""Progress reports: on stderr under ``verbose`` or the global switch, else silent."""

import numpy as np
import pandas as pd
import pytest
from torch import nn

import skmm
from skmm import (
    AudioEncoder,
    CNNImageEncoder,
    CrossModalAligner,
    FusionClassifier,
    PretrainedImageEncoder,
)
from skmm.utils import _progress
from skmm.utils._cache import clear_frozen_cache


@pytest.fixture(autouse=True)
def _fresh_cache():
    # A cached output would be reused silently: every test encodes.
    clear_frozen_cache()
    yield
    clear_frozen_cache()


def _images(n=6):
    rng = np.random.RandomState(0)
    cells = [rng.randint(0, 256, (10, 12, 3), dtype=np.uint8) for _ in range(n)]
    return pd.DataFrame({"photo": pd.Series(cells, dtype=object)})


def _clips(n=4):
    t = np.arange(2000) / 8000
    cells = [np.sin(2 * np.pi * (200 + 100 * i) * t) for i in range(n)]
    return pd.DataFrame({"clip": pd.Series(cells, dtype=object)})


def _paired(n=40):
    rng = np.random.RandomState(0)
    return rng.normal(size=(n, 6))


def _labelled(n=60):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] > 0).astype(int)


def _cnn(**params):
    return CNNImageEncoder(image_size=8, channels=(4,), **params)


def _pretrained(**params):
    network = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    return PretrainedImageEncoder(module=network, image_size=8, **params)


STEPS = {
    "CNNImageEncoder": (lambda **p: _cnn(random_state=0, **p), _images, "6/6"),
    "PretrainedImageEncoder": (_pretrained, _images, "6/6"),
    "AudioEncoder": (lambda **p: AudioEncoder(n_mels=8, **p), _clips, "4/4"),
    "CrossModalAligner": (
        lambda **p: CrossModalAligner(
            n_components=2, max_epochs=3, batch_size=8, random_state=0, **p
        ),
        _paired,
        "epoch 3/3",
    ),
}


def _run(name, **params):
    make, data, _ = STEPS[name]
    make(**params).fit_transform(data())


@pytest.mark.parametrize("name", sorted(STEPS))
def test_steps_are_silent_by_default(name, capsys):
    _run(name)

    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.parametrize("name", sorted(STEPS))
def test_verbose_reports_progress_on_stderr(name, capsys):
    _run(name, verbose=1)

    captured = capsys.readouterr()
    assert captured.out == ""
    assert name in captured.err
    assert STEPS[name][2] in captured.err


@pytest.mark.parametrize("name", sorted(STEPS))
def test_the_global_switch_turns_progress_on(name, capsys):
    with skmm.config_context(verbose=1):
        _run(name)

    captured = capsys.readouterr()
    assert captured.out == ""
    assert name in captured.err


def test_without_tqdm_progress_is_a_few_lines(monkeypatch, capsys):
    monkeypatch.setattr(_progress, "_tqdm", lambda: None)
    items = list(_progress.track(range(100), total=100, name="Work", verbose=1))

    err = capsys.readouterr().err
    assert items == list(range(100))
    lines = err.strip().splitlines()
    assert 2 <= len(lines) <= 12
    assert lines[-1].startswith("[Work] 100/100 rows")


def test_cnn_training_reports_its_loss(capsys):
    X = _images(8)
    y = np.array([0, 1] * 4)
    _cnn(random_state=0, max_epochs=2, verbose=1).fit(X, y)

    err = capsys.readouterr().err
    assert "[CNNImageEncoder] epoch 2/2: loss" in err


def test_aligner_reports_about_ten_epochs_at_level_one(capsys):
    CrossModalAligner(
        n_components=2, max_epochs=30, batch_size=8, random_state=0, verbose=1
    ).fit(_paired())

    lines = [line for line in capsys.readouterr().err.splitlines() if "epoch" in line]
    assert 10 <= len(lines) <= 11
    assert lines[-1].startswith("[CrossModalAligner] epoch 30/30: loss")


def test_training_follows_the_global_switch(capsys):
    X, y = _labelled()
    params = dict(hidden_dim=8, max_epochs=3, batch_size=16, device="cpu")

    FusionClassifier(**params, random_state=0).fit(X, y)
    silent = capsys.readouterr()
    with skmm.config_context(verbose=1):
        FusionClassifier(**params, random_state=0).fit(X, y)
    loud = capsys.readouterr()

    assert silent.out == "" and silent.err == ""
    assert loud.out == ""
    assert "train_loss" in loud.err
    assert loud.err.count("\n") >= 3


def test_the_global_switch_does_not_enter_fitted_models():
    X, y = _labelled()
    with skmm.config_context(verbose=1):
        clf = FusionClassifier(hidden_dim=8, max_epochs=1, device="cpu").fit(X, y)

    assert clf.get_params()["verbose"] == 0


def test_sentence_encoder_shows_its_batches(capsys):
    pytest.importorskip("sentence_transformers")
    from skmm import SentenceTextEncoder

    texts = pd.DataFrame({"text": ["a red dress", "rates rose again"]})
    SentenceTextEncoder(cache=False).fit_transform(texts)
    silent = capsys.readouterr()
    SentenceTextEncoder(cache=False, verbose=1).fit_transform(texts)
    loud = capsys.readouterr()

    assert "Batches" not in silent.err
    assert "Batches" in loud.err
    assert loud.out == ""


def test_a_warm_start_follows_the_switch_of_its_own_fit(capsys):
    X, y = _labelled()
    clf = FusionClassifier(
        hidden_dim=8, max_epochs=2, batch_size=16, device="cpu", warm_start=True
    )
    with skmm.config_context(verbose=1):
        clf.fit(X, y)
    loud = capsys.readouterr()
    clf.fit(X, y)
    silent = capsys.readouterr()

    assert "train_loss" in loud.err
    assert silent.out == "" and silent.err == ""
    assert clf.n_iter_ == 4

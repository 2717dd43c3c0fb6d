import pickle
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from scipy.io import wavfile
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmm.encoders._audio import AudioEncoder

RATE = 8000
FAST = dict(n_mels=16, n_time_bins=5)


def _tone(hz, seconds=0.5, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * hz * t)


def _column(cells, name="audio"):
    column = np.empty(len(cells), dtype=object)
    column[:] = cells
    return pd.DataFrame({name: column})


def _band_means(features, n_mels):
    """Mean log-mel level of each band, from pooling="stats" features."""
    return features[:, :n_mels]


def test_tones_land_in_different_mel_bands():
    encoder = AudioEncoder(n_mels=32, pooling="stats", normalize=False)
    Xt = encoder.fit_transform(_column([_tone(300), _tone(2000), _tone(310)]))
    peak = _band_means(Xt, 32).argmax(axis=1)

    assert peak[1] > peak[0] + 5
    assert abs(int(peak[2]) - int(peak[0])) <= 1


def test_bins_keep_the_time_course():
    silence_then_tone = np.concatenate([np.zeros(4000), _tone(1000)])
    encoder = AudioEncoder(**FAST, normalize=False)
    Xt = encoder.fit_transform(_column([silence_then_tone]))
    levels = Xt.reshape(16, 5).max(axis=0)

    assert Xt.shape == (1, 80)
    assert levels[-1] > levels[0] + 10


def test_output_width_and_feature_names():
    X = _column([_tone(440), _tone(880)])

    bins = AudioEncoder(**FAST).fit(X)
    assert bins.transform(X).shape == (2, 80)
    names = bins.get_feature_names_out()
    assert list(names[4:7]) == ["mel0_t4", "mel1_t0", "mel1_t1"]
    assert len(names) == 80

    stats = AudioEncoder(n_mels=4, pooling="stats").fit(X)
    assert stats.transform(X).shape == (2, 8)
    assert list(stats.get_feature_names_out()) == [
        *(f"mel{m}_mean" for m in range(4)),
        *(f"mel{m}_std" for m in range(4)),
    ]


def test_several_clip_columns_side_by_side():
    X = pd.DataFrame(
        {"left": _column([_tone(440), _tone(880)])["audio"], "right": [None, None]}
    )
    encoder = AudioEncoder(n_mels=4, pooling="stats").fit(X)
    encoder.set_output(transform="pandas")
    Xt = encoder.transform(X)

    assert Xt.shape == (2, 16)
    assert list(Xt.columns[:2]) == ["left__mel0_mean", "left__mel1_mean"]
    assert list(Xt.columns[8:9]) == ["right__mel0_mean"]
    np.testing.assert_array_equal(Xt.iloc[:, 8:].to_numpy(), 0.0)
    assert Xt.iloc[:, :8].abs().to_numpy().sum() > 0


def test_missing_clips_encode_as_zeros_and_do_not_shift_the_mean():
    clips = [_tone(440), _tone(880), _tone(1200)]
    with_missing = _column([*clips, None, np.nan, np.array([])])
    encoder = AudioEncoder(**FAST).fit(with_missing)
    Xt = encoder.transform(with_missing)

    np.testing.assert_array_equal(Xt[3:], 0.0)
    assert np.abs(Xt[:3]).sum() > 0
    reference = AudioEncoder(**FAST).fit(_column(clips))
    np.testing.assert_allclose(encoder.mean_, reference.mean_)
    np.testing.assert_allclose(encoder.scale_, reference.scale_)
    raw = AudioEncoder(**FAST, normalize=False).fit_transform(with_missing)
    np.testing.assert_array_equal(raw[3:], 0.0)


def test_waveform_rows_match_clip_cells():
    rng = np.random.RandomState(0)
    waves = rng.normal(size=(3, 2000))
    padded = waves.copy()
    padded[2, 1500:] = np.nan
    cells = [waves[0], waves[1], waves[2, :1500]]

    rows = AudioEncoder(**FAST, normalize=False).fit_transform(padded)
    np.testing.assert_allclose(
        rows, AudioEncoder(**FAST, normalize=False).fit_transform(_column(cells))
    )
    with_missing = np.vstack([waves[:2], np.full(2000, np.nan)])
    np.testing.assert_array_equal(
        AudioEncoder(**FAST).fit_transform(with_missing)[2], 0
    )


def test_wav_files_round_trip(tmp_path):
    pcm = np.round(_tone(700) * 32767).astype(np.int16)
    tone = pcm / 32768
    mono, stereo = tmp_path / "mono.wav", tmp_path / "stereo.wav"
    wavfile.write(mono, RATE, pcm)
    wavfile.write(stereo, RATE, np.column_stack([tone, -tone]).astype(np.float32))

    encoder = AudioEncoder(**FAST, normalize=False)
    Xt = encoder.fit_transform(_column([str(mono), stereo, tone, np.zeros(4000)]))

    # int16 samples are scaled to [-1, 1]; stereo channels are averaged.
    np.testing.assert_allclose(Xt[0], Xt[2])
    np.testing.assert_allclose(Xt[1], Xt[3])


def _write_int16_wav(path, pcm, rate=RATE):
    """Write mono int16 samples with the standard library's writer."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.astype("<i2").tobytes())


def test_int16_array_cell_matches_its_wav_file(tmp_path):
    rng = np.random.RandomState(0)
    noisy_tone = _tone(700) + 0.05 * rng.normal(size=int(0.5 * RATE))
    pcm = np.round(noisy_tone * 20000).astype(np.int16)
    path = tmp_path / "clip.wav"
    _write_int16_wav(path, pcm)

    raw = AudioEncoder(**FAST, normalize=False).fit_transform(_column([path, pcm]))
    np.testing.assert_allclose(raw[1], raw[0])
    encoder = AudioEncoder(**FAST).fit(_column([path, _tone(300)]))
    np.testing.assert_allclose(
        encoder.transform(_column([pcm])), encoder.transform(_column([str(path)]))
    )


@pytest.mark.parametrize(
    "dtype, full_scale, zero",
    [
        (np.int8, 2**7, 0),
        (np.uint8, 2**7, 2**7),
        (np.int16, 2**15, 0),
        (np.int32, 2**31, 0),
    ],
)
def test_pcm_arrays_are_scaled_like_wav_samples(dtype, full_scale, zero):
    pcm = (np.round(_tone(700) * (full_scale - 1)) + zero).astype(dtype)
    scaled = (pcm.astype(np.float64) - zero) / full_scale
    encoder = AudioEncoder(**FAST, normalize=False)

    expected = encoder.fit_transform(_column([scaled]))
    np.testing.assert_allclose(encoder.fit_transform(_column([pcm])), expected)
    np.testing.assert_allclose(encoder.fit_transform(pcm[np.newaxis]), expected)


def test_int64_arrays_are_amplitudes():
    amplitudes = np.array([0, 1, 0, -1] * 1000)
    encoder = AudioEncoder(**FAST, normalize=False)

    np.testing.assert_allclose(
        encoder.fit_transform(_column([amplitudes])),
        encoder.fit_transform(_column([amplitudes.astype(np.float64)])),
    )


def test_wav_files_are_resampled(tmp_path):
    path = tmp_path / "fast.wav"
    wavfile.write(path, 16000, _tone(1500, rate=16000).astype(np.float32))

    Xt = AudioEncoder(n_mels=32, pooling="stats", normalize=False).fit_transform(
        _column([path, _tone(1500)])
    )
    np.testing.assert_allclose(Xt[0], Xt[1], atol=0.5)
    assert _band_means(Xt, 32)[0].argmax() == _band_means(Xt, 32)[1].argmax()


def test_unreadable_wav_names_file_and_row(tmp_path):
    good, corrupt = tmp_path / "good.wav", tmp_path / "corrupt.wav"
    wavfile.write(good, RATE, _tone(440).astype(np.float32))
    corrupt.write_bytes(b"RIFF not really a wave file")
    encoder = AudioEncoder(**FAST)

    with pytest.raises(ValueError, match=r"corrupt\.wav' in column 'clip', row 1"):
        encoder.fit(_column([good, corrupt], name="clip"))
    with pytest.raises(ValueError, match=r"absent\.wav' in column 'clip', row 0"):
        encoder.fit(_column([tmp_path / "absent.wav"], name="clip"))


def test_bad_cells_name_column_and_row():
    encoder = AudioEncoder(**FAST)

    with pytest.raises(TypeError, match=r"column 'clip', row 1: .* got dict"):
        encoder.fit(_column([_tone(440), {"a": 1}], name="clip"))
    with pytest.raises(TypeError, match=r"column 'clip', row 0 must be a 1-D array"):
        encoder.fit(_column([np.zeros((100, 2))], name="clip"))
    with pytest.raises(ValueError, match=r"column 'clip', row 0 holds infinite"):
        encoder.fit(_column([np.array([0.0, np.inf])], name="clip"))
    with pytest.raises(ValueError, match=r"row 1 holds infinite"):
        encoder.fit(np.array([[0.0, 1.0], [np.inf, 0.0]]))


def test_transform_needs_the_input_form_seen_in_fit():
    encoder = AudioEncoder(**FAST).fit(np.random.RandomState(0).normal(size=(2, 1)))

    with pytest.raises(ValueError, match="fitted on waveform rows"):
        encoder.transform(_column([_tone(440), _tone(880)]).to_numpy())


def test_pickle_round_trip_and_parallel_jobs():
    X = _column([_tone(hz) for hz in (300, 600, 900, 1200)])
    encoder = AudioEncoder(**FAST).fit(X)
    restored = pickle.loads(pickle.dumps(encoder))

    np.testing.assert_array_equal(restored.transform(X), encoder.transform(X))
    # Threads keep the test fast; the jobs split the clips the same way.
    with parallel_config(backend="threading"):
        parallel = AudioEncoder(**FAST, n_jobs=2).fit(X)
        np.testing.assert_array_equal(parallel.transform(X), encoder.transform(X))


@pytest.mark.realdata
def test_spoken_digits_accuracy(data_home):
    folder = data_home / "spoken_digits" / "recordings"
    if not folder.is_dir():
        pytest.skip(f"the spoken digits are not available at {folder}")
    files = sorted(folder.glob("*.wav"))
    digit = np.array([int(Path(f).stem.split("_")[0]) for f in files])
    take = np.array([int(Path(f).stem.split("_")[2]) for f in files])
    X = _column([str(f) for f in files])
    test = take < 5

    model = make_pipeline(
        AudioEncoder(), StandardScaler(), LogisticRegression(C=0.1, max_iter=300)
    )
    model.fit(X[~test], digit[~test])

    # Reference in ../shared/data/README.md: 0.907 with a log-STFT baseline.
    assert model.score(X[test], digit[test]) >= 0.9


def test_base_dir_resolves_relative_paths(tmp_path, monkeypatch):
    wavfile.write(tmp_path / "a.wav", RATE, _tone(440).astype(np.float32))
    wavfile.write(tmp_path / "b.wav", RATE, _tone(880).astype(np.float32))
    absolute = _column([str(tmp_path / "a.wav"), tmp_path / "b.wav", None])
    expected = AudioEncoder(**FAST).fit_transform(absolute)

    monkeypatch.chdir(tmp_path.parent)
    encoder = AudioEncoder(base_dir=tmp_path, **FAST)
    relative = _column(["a.wav", Path("b.wav"), None])
    np.testing.assert_allclose(encoder.fit_transform(relative), expected)
    np.testing.assert_allclose(encoder.transform(absolute), expected)

    with pytest.raises(ValueError) as exc_info:
        encoder.fit(_column(["a.wav", "absent.wav"], name="clip"))
    message = str(exc_info.value)
    assert repr(str(tmp_path / "absent.wav")) in message
    assert "column 'clip', row 1" in message
    with pytest.raises(ValueError, match="pass base_dir"):
        AudioEncoder(**FAST).fit(relative)

"""Audio encoder: fixed-width log-mel spectrogram features.

Only numpy and scipy are used: ``scipy.io.wavfile`` reads the files,
``scipy.signal.resample_poly`` brings them to a common sample rate, and the
short-time Fourier transform and mel filterbank are computed here.
"""

import os
import struct
from functools import lru_cache
from math import gcd
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from scipy.io import wavfile
from scipy.signal import get_window, resample_poly
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from skmm.utils._progress import track
from skmm.utils._sklearn_compat import (
    Interval,
    StrOptions,
    _check_feature_names_in,
    _fit_context,
)
from skmm.utils._validation import (
    check_column_block,
    is_missing,
    relative_path_hint,
    resolve_paths,
)

__all__ = ["AudioEncoder"]

# Floor added to the mel power before the log, so silence stays finite.
_POWER_FLOOR = 1e-10


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


@lru_cache(maxsize=16)
def _mel_filterbank(sample_rate, n_fft, n_mels):
    """Triangular filters of shape (n_mels, n_fft // 2 + 1), peaking at 1.

    Their centres are evenly spaced on the (HTK) mel scale from 0 Hz to the
    Nyquist frequency. Cached, hence read-only.
    """
    fft_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges_hz = _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate / 2), n_mels + 2))
    lower, center, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (fft_hz - lower) / (center - lower)
    falling = (upper - fft_hz) / (upper - center)
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters.setflags(write=False)
    return filters


@lru_cache(maxsize=16)
def _hann_window(n_fft):
    window = get_window("hann", n_fft)
    window.setflags(write=False)
    return window


def _where(column, row):
    return f"row {row}" if column is None else f"column {column!r}, row {row}"


def _pcm_to_float(data):
    """Scale integer PCM samples to [-1, 1]."""
    if data.dtype.kind == "f":
        return data.astype(np.float64)
    if data.dtype == np.uint8:
        return (data.astype(np.float64) - 128.0) / 128.0
    return data.astype(np.float64) / -float(np.iinfo(data.dtype).min)


def _array_to_float(wave):
    """Samples of an array as float64, PCM integers scaled as in a WAV file.

    int8, int16, int32 and uint8 arrays hold PCM samples, the types
    ``scipy.io.wavfile`` returns: they are scaled to [-1, 1] by the full scale
    of their type, as the WAV reader does, so an array and the file it was
    read from give the same features. Other integer arrays (int64, the type
    numpy gives a list of Python ints) and boolean ones are taken as
    amplitudes, like float arrays.
    """
    kind, itemsize = wave.dtype.kind, wave.dtype.itemsize
    if (kind == "i" and itemsize <= 4) or (kind == "u" and itemsize == 1):
        return _pcm_to_float(wave)
    return wave.astype(np.float64)


def _read_wav(path, sample_rate, column, row):
    try:
        rate, data = wavfile.read(path)
    except FileNotFoundError as exc:
        raise ValueError(
            f"The WAV file {os.fspath(path)!r} in {_where(column, row)} does not "
            f"exist.{relative_path_hint(os.fspath(path))}"
        ) from exc
    except (OSError, ValueError, EOFError, struct.error) as exc:
        raise ValueError(
            f"AudioEncoder could not read the WAV file {os.fspath(path)!r} in "
            f"{_where(column, row)}: {exc}"
        ) from exc
    wave = _pcm_to_float(data)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if rate != sample_rate and wave.size:
        divisor = gcd(sample_rate, rate)
        wave = resample_poly(wave, sample_rate // divisor, rate // divisor)
    return wave


def _finite_samples(wave, column, row):
    """Drop NaN samples (padding); reject infinite ones."""
    finite = np.isfinite(wave)
    if finite.all():
        return wave
    if np.isinf(wave).any():
        raise ValueError(
            f"The waveform in {_where(column, row)} holds infinite samples."
        )
    return wave[finite]


def _load_clip(value, sample_rate, column, row):
    """Return the waveform of one cell, or None for a missing clip."""
    if isinstance(value, (str, os.PathLike)):
        wave = _read_wav(value, sample_rate, column, row)
    elif isinstance(value, (np.ndarray, list, tuple)):
        wave = np.asarray(value)
        if wave.ndim != 1 or wave.dtype.kind not in "biuf":
            raise TypeError(
                f"The waveform in {_where(column, row)} must be a 1-D array "
                f"of numbers, got an array of shape {wave.shape} and dtype "
                f"{wave.dtype}."
            )
        wave = _array_to_float(wave)
    elif is_missing(value):
        return None
    else:
        raise TypeError(
            f"AudioEncoder, {_where(column, row)}: the argument must be a string "
            "or path-like (a WAV file), a 1-D array of numbers (a waveform) or "
            f"missing (None or NaN); got {type(value).__name__}."
        )
    wave = _finite_samples(wave, column, row)
    return wave if wave.size else None


class _ClipFeaturizer:
    """Turn one clip into its pooled log-mel features; picklable for joblib."""

    def __init__(self, sample_rate, n_mels, n_fft, hop_length, n_time_bins, pooling):
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_time_bins = n_time_bins
        self.pooling = pooling

    @property
    def n_features(self):
        if self.pooling == "bins":
            return self.n_mels * self.n_time_bins
        return 2 * self.n_mels

    def __call__(self, value, column, row):
        wave = _load_clip(value, self.sample_rate, column, row)
        if wave is None:
            return None
        log_mel = self.log_mel(wave)
        if self.pooling == "stats":
            return np.concatenate([log_mel.mean(axis=1), log_mel.std(axis=1)])
        return self._pool_bins(log_mel).ravel()

    def log_mel(self, wave):
        """Log-mel power spectrogram of shape (n_mels, n_frames)."""
        # Centre the frames on the samples, as librosa does, so even a clip
        # shorter than one window gives one frame.
        half = self.n_fft // 2
        padded = np.pad(wave, (half, self.n_fft - half))
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft)
        frames = frames[:: self.hop_length] * _hann_window(self.n_fft)
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        filters = _mel_filterbank(self.sample_rate, self.n_fft, self.n_mels)
        return np.log(filters @ power.T + _POWER_FLOOR)

    def _pool_bins(self, log_mel):
        """Average the frames into n_time_bins equal spans (adaptive pooling)."""
        n_frames = log_mel.shape[1]
        bins = np.arange(self.n_time_bins)
        starts = bins * n_frames // self.n_time_bins
        ends = -(-(bins + 1) * n_frames // self.n_time_bins)
        cumulative = np.zeros((log_mel.shape[0], n_frames + 1))
        np.cumsum(log_mel, axis=1, out=cumulative[:, 1:])
        return (cumulative[:, ends] - cumulative[:, starts]) / (ends - starts)


class AudioEncoder(TransformerMixin, BaseEstimator):
    """Encode audio clips as fixed-width log-mel spectrogram features.

    Each clip is framed with a Hann window (``n_fft`` samples every
    ``hop_length``), its power spectrum is mapped onto ``n_mels`` mel bands
    and log-compressed. The variable number of frames is then made fixed:
    ``pooling="bins"`` averages the frames into ``n_time_bins`` equal spans
    of the clip (``n_mels * n_time_bins`` features, the time course of the
    spectrum); ``pooling="stats"`` keeps the mean and the standard deviation
    of each band over time (``2 * n_mels`` features).

    Two input forms are accepted:

    - an object block whose cells are clips: WAV file paths (``str`` or
      path-like; resampled to ``sample_rate`` when recorded at another rate,
      stereo averaged to mono) or 1-D arrays of samples at ``sample_rate``,
      of any length. Each column gives its own features, side by side.
    - a 2-D numeric block whose rows are waveforms at ``sample_rate``. NaN
      samples are dropped, so shorter clips can be padded with NaN.

    Samples are scaled as ``scipy.io.wavfile`` reads them: float samples are
    kept (full scale is 1), and arrays of PCM integers (``int8``, ``int16``,
    ``int32``, ``uint8``) are scaled to [-1, 1] as in a WAV file of that
    sample type, so a clip gives the same features from its file and from
    its samples. Other integer arrays (``int64``, the type numpy gives a
    list of Python ints) are taken as amplitudes, like floats.

    A missing clip (``None``, ``NaN``, an empty array or an all-NaN row)
    encodes as zeros in ``fit`` and ``transform`` alike: after
    normalisation that is the training mean, and it does not count towards
    the mean and scale learned in ``fit``. A file that cannot be read raises
    a ``ValueError`` naming it with its column and row; a cell that is
    neither a path nor a 1-D array of numbers raises a ``TypeError``.

    Parameters
    ----------
    sample_rate : int, default=8000
        Sample rate, in Hz, of the arrays given and the rate WAV files are
        resampled to.
    n_mels : int, default=32
        Number of mel bands.
    n_fft : int, default=256
        Length of the analysis window, in samples.
    hop_length : int, default=128
        Step between successive windows, in samples.
    n_time_bins : int, default=20
        Number of time spans the spectrogram is averaged into when
        ``pooling="bins"``.
    pooling : {"bins", "stats"}, default="bins"
        How the frames are summarised: ``"bins"`` keeps ``n_time_bins`` time
        steps; ``"stats"`` keeps each band's mean and standard deviation over
        time.
    normalize : bool, default=True
        Standardise each feature with the mean and standard deviation
        learned in :term:`fit`.
    n_jobs : int, default=None
        Number of jobs reading and encoding clips in parallel with joblib.
        ``None`` means 1 unless in a :func:`joblib.parallel_config` context.
        ``-1`` means using all processors.
    verbose : int, default=0
        Report the clips encoded on stderr (a progress bar if tqdm is
        installed). 0 follows ``skmm.get_config()["verbose"]``.
    base_dir : str or path-like, default=None
        Folder that relative WAV paths are read from, such as the folder of
        the CSV file that lists them. ``None`` reads them from the working
        folder. Absolute paths and waveforms are kept as they are.

    Attributes
    ----------
    input_kind_ : {"clip_columns", "waveform_rows"}
        Input form seen in :term:`fit`; :term:`transform` expects the same.
    mean_ : ndarray of shape (n_features_out,)
        Mean of each feature over the clips seen in :term:`fit`. Only
        present when ``normalize=True``.
    scale_ : ndarray of shape (n_features_out,)
        Standard deviation of each feature over the clips seen in
        :term:`fit` (1 where it is 0). Only present when ``normalize=True``.
    n_features_in_ : int
        Number of columns seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.encoders import AudioEncoder
    >>> t = np.arange(4000) / 8000
    >>> clips = np.empty((3, 1), dtype=object)
    >>> clips[:, 0] = [np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 880 * t), None]
    >>> encoder = AudioEncoder(n_mels=16, n_time_bins=5).fit(clips)
    >>> encoder.transform(clips).shape
    (3, 80)
    >>> encoder.get_feature_names_out()[:3]
    array(['mel0_t0', 'mel0_t1', 'mel0_t2'], dtype=object)
    """

    _parameter_constraints = {
        "sample_rate": [Interval(Integral, 1, None, closed="left")],
        "n_mels": [Interval(Integral, 1, None, closed="left")],
        "n_fft": [Interval(Integral, 2, None, closed="left")],
        "hop_length": [Interval(Integral, 1, None, closed="left")],
        "n_time_bins": [Interval(Integral, 1, None, closed="left")],
        "pooling": [StrOptions({"bins", "stats"})],
        "normalize": ["boolean"],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
        "base_dir": [str, os.PathLike, None],
    }

    def __init__(
        self,
        *,
        sample_rate=8000,
        n_mels=32,
        n_fft=256,
        hop_length=128,
        n_time_bins=20,
        pooling="bins",
        normalize=True,
        n_jobs=None,
        verbose=0,
        base_dir=None,
    ):
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_time_bins = n_time_bins
        self.pooling = pooling
        self.normalize = normalize
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.base_dir = base_dir

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the feature mean and scale (when ``normalize=True``).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Clip columns (WAV paths or 1-D arrays), or one waveform per row.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted encoder.
        """
        self._fit(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit the encoder and return the clips' features.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Clip columns (WAV paths or 1-D arrays), or one waveform per row.
        y : None
            Ignored.

        Returns
        -------
        Xt : ndarray of shape (n_samples, n_features_out)
            Log-mel features; zeros for missing clips.
        """
        return self._fit(X)

    def transform(self, X):
        """Encode clips as log-mel features.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Clips in the same form as in :term:`fit`.

        Returns
        -------
        Xt : ndarray of shape (n_samples, n_features_out)
            Log-mel features; zeros for missing clips.
        """
        check_is_fitted(self)
        X, columns = check_column_block(self, X, reset=False)
        X = resolve_paths(X, self.base_dir)
        kind = _input_kind(X)
        if kind != self.input_kind_:
            raise ValueError(
                f"AudioEncoder was fitted on {self.input_kind_.replace('_', ' ')} "
                f"but transform got {kind.replace('_', ' ')}."
            )
        return self._finish(*self._encode(X, columns, kind))

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the column names seen in :term:`fit`.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``mel{m}_t{t}`` (``pooling="bins"``) or ``mel{m}_mean`` then
            ``mel{m}_std`` (``pooling="stats"``); prefixed with
            ``{column}__`` when several clip columns are encoded.
        """
        check_is_fitted(self)
        input_features = _check_feature_names_in(self, input_features)
        if self.pooling == "bins":
            names = [
                f"mel{m}_t{t}"
                for m in range(self.n_mels)
                for t in range(self.n_time_bins)
            ]
        else:
            names = [f"mel{m}_mean" for m in range(self.n_mels)]
            names += [f"mel{m}_std" for m in range(self.n_mels)]
        if self.input_kind_ == "clip_columns" and len(input_features) > 1:
            names = [f"{column}__{name}" for column in input_features for name in names]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    def _fit(self, X):
        X, columns = check_column_block(self, X, reset=True)
        X = resolve_paths(X, self.base_dir)
        self.input_kind_ = _input_kind(X)
        features, present = self._encode(X, columns, self.input_kind_)
        if self.normalize:
            n_clips, n_per_clip = features.shape[1:]
            self.mean_ = np.zeros((n_clips, n_per_clip))
            self.scale_ = np.ones((n_clips, n_per_clip))
            for j in range(n_clips):
                seen = features[present[:, j], j]
                if len(seen):
                    self.mean_[j] = seen.mean(axis=0)
                    std = seen.std(axis=0)
                    self.scale_[j] = np.where(std > 0, std, 1.0)
            self.mean_ = self.mean_.ravel()
            self.scale_ = self.scale_.ravel()
        return self._finish(features, present)

    def _encode(self, X, columns, kind):
        """Features of shape (n_samples, n_clips, n_per_clip) and presence mask."""
        featurizer = _ClipFeaturizer(
            self.sample_rate,
            self.n_mels,
            self.n_fft,
            self.hop_length,
            self.n_time_bins,
            self.pooling,
        )
        if kind == "waveform_rows":
            X = _array_to_float(X)
            clips = ((X[i], None, i) for i in range(X.shape[0]))
            n_clips = 1
        else:
            clips = (
                (X[i, j], columns[j], i)
                for i in range(X.shape[0])
                for j in range(X.shape[1])
            )
            n_clips = X.shape[1]
        results = track(
            Parallel(n_jobs=self.n_jobs, return_as="generator")(
                delayed(featurizer)(*clip) for clip in clips
            ),
            total=X.shape[0] * n_clips,
            name="AudioEncoder",
            verbose=self.verbose,
            unit="clip",
        )
        features = np.zeros((X.shape[0], n_clips, featurizer.n_features))
        present = np.zeros((X.shape[0], n_clips), dtype=bool)
        for k, result in enumerate(results):
            if result is not None:
                features[k // n_clips, k % n_clips] = result
                present[k // n_clips, k % n_clips] = True
        return features, present

    def _finish(self, features, present):
        if self.normalize:
            n_clips = features.shape[1]
            features = (
                features - self.mean_.reshape(n_clips, -1)
            ) / self.scale_.reshape(n_clips, -1)
        features[~present] = 0.0
        return features.reshape(features.shape[0], -1)


def _input_kind(X):
    """Whether the block holds one waveform per row or clips in its cells."""
    if X.dtype.kind in "biuf":
        return "waveform_rows"
    if all(isinstance(value, Real) for value in X.ravel().tolist()):
        return "waveform_rows"
    return "clip_columns"

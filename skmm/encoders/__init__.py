"""Encoders: one scikit-learn transformer per modality."""

from skmm.encoders._audio import AudioEncoder
from skmm.encoders._image import CNNImageEncoder
from skmm.encoders._image_pretrained import PretrainedImageEncoder
from skmm.encoders._sentence import SentenceTextEncoder
from skmm.encoders._text import SequenceTextEncoder, TfidfTextEncoder

__all__ = [
    "AudioEncoder",
    "CNNImageEncoder",
    "PretrainedImageEncoder",
    "SentenceTextEncoder",
    "SequenceTextEncoder",
    "TfidfTextEncoder",
]

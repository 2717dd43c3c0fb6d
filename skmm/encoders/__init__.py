"""Encoders: one scikit-learn transformer per modality."""

from skmm.encoders._image import CNNImageEncoder

__all__ = ["CNNImageEncoder"]

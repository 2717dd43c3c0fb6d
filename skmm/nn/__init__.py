"""Torch modules: per-modality towers and fusion layers."""

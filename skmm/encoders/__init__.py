"""Encoders: one scikit-learn transformer per modality."""

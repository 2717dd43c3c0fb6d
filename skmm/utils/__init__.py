"""Utilities shared across skmm."""

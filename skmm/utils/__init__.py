"""Utilities shared across skmm."""

from skmm.utils._cache import clear_frozen_cache, frozen_cache_info

__all__ = ["clear_frozen_cache", "frozen_cache_info"]

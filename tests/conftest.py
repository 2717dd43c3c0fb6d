from pathlib import Path

import pytest


@pytest.fixture
def data_home():
    """The folder of real datasets beside the project, ``../shared/data``."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"the real datasets are not available at {path}")
    return path

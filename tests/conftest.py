"""Shared fixtures: where the real data lives, a real image, and offline settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real annotated samples in ../shared/data."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"real test data not found at {SHARED_DATA}: tests need ../shared beside the repo"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def swan_image_path(shared_data: Path) -> Path:
    """A real 480x854 DAVIS frame (blackswan, frame 0)."""
    return shared_data / "davis2016_blackswan" / "JPEGImages" / "480p" / "blackswan" / "00000.jpg"


@pytest.fixture(scope="session", autouse=True)
def tiny_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build tiny models once per test session into a fresh cache (never the user's)."""
    cache = Path(os.environ.get("PIXELGROUND_TEST_CACHE") or tmp_path_factory.mktemp("pgcache"))
    os.environ["PIXELGROUND_CACHE"] = str(cache)
    return cache

"""Masks drawn for tests."""

import numpy as np


def square(top: int, left: int, size: int = 6, side: int = 40) -> np.ndarray:
    """(side, side) bool mask of a size x size square whose top-left pixel is (top, left)."""
    mask = np.zeros((side, side), bool)
    mask[top : top + size, left : left + size] = True
    return mask

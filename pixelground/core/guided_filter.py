"""The guided filter (He, Sun and Tang, "Guided Image Filtering", ECCV 2010) with a colour guide.

It smooths a map (a mask's probabilities) while following the edges of a guide image: in
every window the output is a linear function of the guide's colour, fitted to the map by
least squares. A mask decoded at a quarter of the image's resolution and upsampled
bilinearly has soft, rounded borders; filtered with the image as guide they move to where
the colours change.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter

from pixelground.core.errors import InputError


def guided_filter(guide: np.ndarray, values: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Filter ``values`` with the colour image ``guide`` as guide.

    Args:
        guide: (H, W, 3) image, float in [0, 1] (uint8 is scaled by 1/255).
        values: (H, W) map to filter, e.g. probabilities.
        radius: window half-side in pixels (windows of 2 * radius + 1).
        eps: regulariser of the per-window fit; larger is smoother (0.001 keeps edges between
            colours 0.03 apart).

    Returns:
        (H, W) float64 filtered map.
    """
    if guide.ndim != 3 or guide.shape[2] != 3 or guide.shape[:2] != values.shape:
        raise InputError(f"guide {guide.shape} and values {values.shape} must be (H, W, 3), (H, W)")
    if radius < 1 or not eps > 0:
        raise InputError(f"radius must be >= 1 and eps > 0, got {radius}, {eps}")
    image = guide.astype(np.float64) / 255 if guide.dtype == np.uint8 else guide.astype(np.float64)
    p = values.astype(np.float64)

    def box(x: np.ndarray) -> np.ndarray:
        return uniform_filter(x, size=2 * radius + 1, mode="reflect")

    mean_i = np.stack([box(image[..., c]) for c in range(3)], -1)
    mean_p = box(p)
    cov_ip = np.stack([box(image[..., c] * p) for c in range(3)], -1) - mean_i * mean_p[..., None]
    sigma = np.empty((*p.shape, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            var = box(image[..., i] * image[..., j]) - mean_i[..., i] * mean_i[..., j]
            sigma[..., i, j] = sigma[..., j, i] = var
    sigma += eps * np.eye(3)
    a = np.linalg.solve(sigma, cov_ip[..., None])[..., 0]  # (H, W, 3)
    b = mean_p - (a * mean_i).sum(-1)
    mean_a = np.stack([box(a[..., c]) for c in range(3)], -1)
    return (mean_a * image).sum(-1) + box(b)

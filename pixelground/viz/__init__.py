"""Draw grounding results: masks, contours, boxes, points, label tags and a legend.

No file I/O here: functions take and return RGB uint8 (H, W, 3) arrays; callers save them.
"""

from pixelground.viz.colors import PALETTE, distinct_colors, phrase_color, track_color
from pixelground.viz.legend import draw_legend, legend_entries, legend_layout
from pixelground.viz.overlay import (
    draw_boxes,
    draw_contours,
    draw_labels,
    draw_points,
    overlay_masks,
    render_frame,
    render_result,
    render_video_frame,
)

__all__ = [
    "PALETTE",
    "distinct_colors",
    "draw_boxes",
    "draw_contours",
    "draw_labels",
    "draw_legend",
    "draw_points",
    "legend_entries",
    "legend_layout",
    "overlay_masks",
    "phrase_color",
    "render_frame",
    "render_result",
    "render_video_frame",
    "track_color",
]

"""SegModelConfig: inconsistent architectures are refused with a message naming the field."""

from __future__ import annotations

import pytest

from pixelground.core.errors import InputError
from pixelground.models.config import SegModelConfig


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mask_grid": 30}, "mask_grid must be a multiple of 4"),
        ({"image_size": 250}, "must be divisible by mask_grid / 4"),
        ({"decoder_dim": 60}, "decoder_dim"),
        ({"lm_grid": 0}, "lm_grid"),
        ({"seg_reader_heads": 0}, "seg_reader_heads"),
        ({"fusion_layers": 1}, "'fusion_layers' is an option that was removed"),
        ({"seg_state": "token"}, "'seg_state' is an option that was removed"),
        ({"word_loss_weight": -0.1}, "word_loss_weight must be >= 0"),
        ({"min_mask_island": -1}, "min_mask_island must be >= 0"),
        ({"refer_template": "Segment it."}, "refer_template must contain"),
        ({"stepz": 3}, r"unknown model config keys \['stepz'\]"),
    ],
)
def test_inconsistent_fields_are_refused(fields, message):
    with pytest.raises(InputError, match=message):
        SegModelConfig.from_dict(fields)


def test_dict_round_trip_keeps_every_field():
    config = SegModelConfig(word_loss_weight=0.5, lora_target_modules=("q_proj",))
    again = SegModelConfig.from_dict(config.to_dict())
    assert again == config
    assert again.embed_grid == config.mask_grid // 4


def test_removed_options_at_their_off_values_are_dropped():
    data = {
        **SegModelConfig().to_dict(),
        "coarse_prior": True,
        "video_memory": 0,
        "top_down": False,
    }
    assert SegModelConfig.from_dict(data) == SegModelConfig()

"""CASS object presence (text side) against the official code's outputs, every dataset config."""

import json

import numpy as np
import pytest
from paths import SHARED_DATA

pytest.importorskip("scipy")
from pixelground.core.errors import InputError  # noqa: E402
from pixelground.tasks import cass_presence as presence  # noqa: E402
from pixelground.tasks.cass_settings import (  # noqa: E402
    SETTINGS,
    class_entries,
    class_file,
    get_setting,
)

GOLDEN = SHARED_DATA / "golden" / "cass"
DATA = dict(np.load(GOLDEN / "object_presence.npz"))
PARAMS = json.loads((GOLDEN / "object_presence.json").read_text())["params"]


@pytest.mark.parametrize("name", list(PARAMS["datasets"]))
def test_object_presence_matches_official(name):
    setting = get_setting(name)
    official = PARAMS["datasets"][name]
    assert setting.h_threshold == official["h_threshold"]
    assert setting.mean_vector_weight == official["mean_vector_weight"]
    assert setting.global_semantics_weight == official["global_semantics_weight"]
    assert setting.prob_thd == official["prob_thd"]
    assert setting.slide == (official["slide_crop"] > 0)
    from_crop = official["prior_source"] == "x_last"
    assert setting.prior_from_crop or not setting.slide or not from_crop

    text = DATA["text_embeddings"]
    clusters = presence.cluster_classes(text, setting.h_threshold)
    np.testing.assert_array_equal(clusters, DATA[f"{name}__cluster_labels"])
    cls = DATA["x_last"][0] if from_crop else DATA["global_vector"][0]
    logits, adjustment, prior = presence.crop_logits(
        DATA["patch_features"][0],
        text,
        cls,
        clusters,
        setting.mean_vector_weight,
        setting.global_semantics_weight,
        setting.topk,
    )
    expect = lambda key: DATA[f"{name}__{key}"]  # noqa: E731
    assert np.abs(prior - expect("object_presence_prior")[0]).max() < 1e-6
    np.testing.assert_array_equal(adjustment.selected_classes, expect("selected_classes"))
    np.testing.assert_array_equal(adjustment.topk_indices, expect("topk_indices"))
    assert np.abs(adjustment.topk_values - expect("topk_values")).max() < 1e-6
    assert np.abs(adjustment.mean_vectors - expect("mean_vectors")).max() < 1e-6
    assert np.abs(adjustment.adjusted_embeddings - expect("adjusted_embeddings")).max() < 1e-6
    adjusted = adjustment.adjusted_text_features
    assert np.abs(adjusted - expect("adjusted_text_features")).max() < 1e-6
    assert np.abs(logits - expect("logits")[0]).max() < 1e-6
    rows, cols = (int(v) for v in DATA["grid"])
    grid = logits.T.reshape(-1, rows, cols)
    assert np.abs(grid - expect("logits_grid")[0]).max() < 1e-6
    labels, _ = presence.predict_classes(
        expect("logits_grid")[0], DATA["query_idx"], setting.logit_scale, setting.prob_thd
    )
    np.testing.assert_array_equal(labels, expect("seg_pred_patch")[0])


def test_settings_and_class_files():
    assert len(SETTINGS) == 8
    assert [get_setting(n).rescale for n in ("voc20", "city_scapes", "voc21")] == [
        False,
        False,
        True,
    ]
    counts = {name: len(class_file(name)) for name in SETTINGS}
    assert counts == {
        "voc21": 21,
        "voc20": 20,
        "ade20k": 150,
        "city_scapes": 19,
        "context60": 60,
        "context59": 59,
        "coco_object": 81,
        "coco_stuff164k": 171,
    }
    assert "person in shirt" in class_file("voc20")[14]
    voc21 = get_setting("voc21")
    entries = class_entries("person, dog", voc21)
    assert entries[0] == list(voc21.background) and entries[1:] == [["person"], ["dog"]]
    assert class_entries([["tv", "monitor"], "cat"], get_setting("ade20k")) == [
        ["tv", "monitor"],
        ["cat"],
    ]
    with pytest.raises(InputError):
        get_setting("nope")
    with pytest.raises(InputError):
        class_entries(" , ", voc21)

"""Named CASS settings: the official per-dataset configs, usable on any image and classes.

Each of the paper's eight benchmarks has a config (MICV-yonsei/CASS ``configs/cfg_*.py``)
that sets the object-presence constants, the test-time resize, whether the image is
processed whole or by sliding window, and, through its name, whether singular values are
rescaled. ``CassSetting`` holds them; ``SETTINGS`` names them as the configs do (so
``coco_stuff164k`` is COCO-Stuff). Each setting's class-name file (one class a line,
synonyms separated by ", "; the files CASS shares with SCLIP/ClearCLIP) ships in
``tasks/cass_classes/NAME.txt``: pass ``"@NAME"`` as the classes to use it.

Background: in voc21, context60 and coco_object, class 0 is a background class (for
voc21 and coco_object a list of stuff names standing in for it) and pixels whose best
probability is below ``prob_thd`` go to class 0. A setting with ``background`` adds that
class in front of a user's own classes, so "person,dog" under voc21 behaves as the
benchmark does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from pixelground.core.errors import InputError

#: CLIP's 80 ImageNet prompt templates, with which CASS embeds every class name.
IMAGENET_TEMPLATES = tuple(
    t.replace("{c}", "{}")
    for t in (
        "a bad photo of a {c}.|a photo of many {c}.|a sculpture of a {c}.|"
        "a photo of the hard to see {c}.|a low resolution photo of the {c}.|"
        "a rendering of a {c}.|graffiti of a {c}.|a bad photo of the {c}.|"
        "a cropped photo of the {c}.|a tattoo of a {c}.|the embroidered {c}.|"
        "a photo of a hard to see {c}.|a bright photo of a {c}.|a photo of a clean {c}.|"
        "a photo of a dirty {c}.|a dark photo of the {c}.|a drawing of a {c}.|"
        "a photo of my {c}.|the plastic {c}.|a photo of the cool {c}.|"
        "a close-up photo of a {c}.|a black and white photo of the {c}.|"
        "a painting of the {c}.|a painting of a {c}.|a pixelated photo of the {c}.|"
        "a sculpture of the {c}.|a bright photo of the {c}.|a cropped photo of a {c}.|"
        "a plastic {c}.|a photo of the dirty {c}.|a jpeg corrupted photo of a {c}.|"
        "a blurry photo of the {c}.|a photo of the {c}.|a good photo of the {c}.|"
        "a rendering of the {c}.|a {c} in a video game.|a photo of one {c}.|"
        "a doodle of a {c}.|a close-up photo of the {c}.|a photo of a {c}.|"
        "the origami {c}.|the {c} in a video game.|a sketch of a {c}.|a doodle of the {c}.|"
        "a origami {c}.|a low resolution photo of a {c}.|the toy {c}.|"
        "a rendition of the {c}.|a photo of the clean {c}.|a photo of a large {c}.|"
        "a rendition of a {c}.|a photo of a nice {c}.|a photo of a weird {c}.|"
        "a blurry photo of a {c}.|a cartoon {c}.|art of a {c}.|a sketch of the {c}.|"
        "a embroidered {c}.|a pixelated photo of a {c}.|itap of the {c}.|"
        "a jpeg corrupted photo of the {c}.|a good photo of a {c}.|a plushie {c}.|"
        "a photo of the nice {c}.|a photo of the small {c}.|a photo of the weird {c}.|"
        "the cartoon {c}.|art of the {c}.|a drawing of the {c}.|a photo of the large {c}.|"
        "a black and white photo of a {c}.|the plushie {c}.|a dark photo of a {c}.|"
        "itap of a {c}.|graffiti of the {c}.|a toy {c}.|itap of my {c}.|"
        "a photo of a cool {c}.|a photo of a small {c}.|a tattoo of the {c}."
    ).split("|")
)


@dataclass(frozen=True)
class CassSetting:
    """One official CASS config's constants.

    Attributes:
        name: config name (``cfg_NAME.py``); it decides singular-value rescaling.
        h_threshold: Ward-linkage cut of the text-embedding clustering.
        mean_vector_weight: alpha, how far a cluster's chosen text embedding moves toward
            the mean of its two best-matching patch features.
        global_semantics_weight: gamma, weight of the object-presence prior in the logits.
        prob_thd: pixels whose best class probability is below this get class 0.
        slide: sliding-window inference (crop, stride); False processes the whole image.
        short_side: the test-time resize (keep ratio, longer side at most 2048).
        prior_from_crop: take the object-presence prior from each crop's own CLS
            embedding (city_scapes; voc21 has one crop, the image) instead of the whole
            image's.
        background: names of the background class put in front of the user's classes
            (empty: no background class).
        crop, stride: sliding window, in pixels of the resized image.
        logit_scale: softmax temperature of the final prediction.
        topk: patches averaged per cluster in the text adjustment.
    """

    name: str
    h_threshold: float
    mean_vector_weight: float
    global_semantics_weight: float
    prob_thd: float = 0.0
    slide: bool = True
    short_side: int = 336
    prior_from_crop: bool = False
    background: tuple[str, ...] = ()
    crop: int = 224
    stride: int = 112
    logit_scale: float = 40.0
    topk: int = 2

    @property
    def rescale(self) -> bool:
        """Dynamic eigenscaling of the DINO singular values (off for voc20, city_scapes)."""
        return self.name not in ("voc20", "city_scapes")


_STUFF = tuple(
    "sky, wall, tree, wood, grass, road, sea, river, mountain, sands, desk, bed, building, "
    "cloud, lamp, door, window, wardrobe, ceiling, shelf, curtain, stair, floor, hill, rail, "
    "fence".split(", ")
)

SETTINGS: dict[str, CassSetting] = {
    s.name: s
    for s in (
        CassSetting("voc21", 0.10, 0.03, 0.10, prob_thd=0.1, slide=False, background=_STUFF),
        CassSetting("voc20", 0.10, 0.02, 0.40),
        CassSetting("ade20k", 0.06, 0.05, 0.30),
        CassSetting("city_scapes", 0.14, 0.03, 0.10, short_side=560, prior_from_crop=True),
        CassSetting("context60", 0.09, 0.04, 0.25, prob_thd=0.1, background=("background",)),
        CassSetting("context59", 0.09, 0.04, 0.25),
        CassSetting("coco_object", 0.10, 0.01, 0.25, prob_thd=0.1, background=_STUFF),
        CassSetting("coco_stuff164k", 0.02, 0.02, 0.20),
    )
}
#: The setting used when none is named: ADE20K's (open scenes, no background class).
DEFAULT_SETTING = "ade20k"


def get_setting(name: str | CassSetting | None) -> CassSetting:
    """A setting by name (None: DEFAULT_SETTING), or the setting itself.

    Raises:
        InputError: an unknown name.
    """
    if isinstance(name, CassSetting):
        return name
    name = name or DEFAULT_SETTING
    if name not in SETTINGS:
        raise InputError(f"unknown CASS setting {name!r}; settings: {', '.join(SETTINGS)}")
    return SETTINGS[name]


def class_file(name: str) -> list[list[str]]:
    """The classes of setting ``name``'s class-name file: one list of synonyms per class."""
    get_setting(name)
    text = (resources.files("pixelground") / "tasks" / "cass_classes" / f"{name}.txt").read_text()
    return [line.split(", ") for line in text.splitlines() if line.strip()]


def class_entries(
    classes: str | Sequence[str | Sequence[str]], setting: CassSetting
) -> list[list[str]]:
    """Class entries (each a list of synonyms) from what a user gives, background first.

    Args:
        classes: ``"@NAME"`` for a setting's class file; a comma-separated string; or a
            list whose items are names or lists of synonyms (the first names the class).
        setting: adds its background class in front unless the classes start with it.

    Raises:
        InputError: no class names.
    """
    if isinstance(classes, str) and classes.strip().startswith("@"):
        return class_file(classes.strip()[1:])
    items = classes.split(",") if isinstance(classes, str) else list(classes)
    entries: list[list[str]] = []
    for item in items:
        names = [item] if isinstance(item, str) else list(item)
        names = [" ".join(str(n).split()) for n in names]
        names = [n for n in names if n]
        if names and names not in entries:
            entries.append(names)
    if not entries:
        raise InputError('give at least one class name, e.g. --classes "sky,road,person"')
    background = list(setting.background)
    if background and entries[0] != background and entries[0] != ["background"]:
        entries.insert(0, background)
    return entries

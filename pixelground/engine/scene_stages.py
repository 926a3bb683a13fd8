"""Levels 2-4 of the engine: scene graph, dense grounded caption, extra context.

Level 2 grounds the caption's phrases and matches them to level-1 objects (mask IoU; an
unmatched grounded mask becomes a new object), chooses each object's label among its
candidates with the scorer, and relates objects geometrically (objects.scene_relations).
Level 3 writes a dense caption from the scene graph (the VLM with in-context examples, as
GranD's level 3, or a deterministic template), then verifies it: a phrase is kept only when
it names an object of this image, else it is dropped and counted. Level 4 asks the VLM for a
paragraph of context.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from pixelground.core.media import LoadedImage
from pixelground.engine.objects import (
    make_object,
    match_object,
    object_masks,
    object_name,
    scene_relations,
)
from pixelground.engine.stages import Context, Record, Stage
from pixelground.tasks.association import mask_crops
from pixelground.tasks.common import parse_marked_phrases

SEG = "[SEG]"
DENSE_EXAMPLES = (
    "Objects: 0 a brown dog; 1 a red ball; 2 green grass. Relations: 0 next to 1; 0 on 2.\n"
    "Caption: <p>a brown dog</p> lies on <p>green grass</p> next to <p>a red ball</p>.\n"
    "Objects: 0 a man in a blue shirt; 1 a bicycle. Relations: 0 left of 1.\n"
    "Caption: <p>a man in a blue shirt</p> stands to the left of <p>a bicycle</p>.\n"
)
CONTEXT_PROMPT = (
    "Write a short paragraph about this image: the likely place, time and activity, and "
    "anything a viewer would need to know beyond what is visible."
)


def ground_phrases(record: Record, image: LoadedImage, ctx: Context) -> Record:
    """Ground the caption's phrases and match each to a level-1 object (or add one).

    Phrases an end-to-end grounding model already grounded (level 1) are kept as they are.
    """
    caption = record.get("caption") or ""
    if record.get("phrases") or not caption.strip():
        return record
    result = ctx.pipe.ground(image, caption, threshold=ctx.settings.detect_threshold)
    objects = list(record["objects"])
    phrases = []
    for region in result.regions:
        if region.mask is None or not region.mask.any():
            continue
        found = match_object(region.mask, objects, ctx.settings.match_iou)
        if found is None:
            obj = make_object(region.mask, region.score, [region.phrase or ""], "phrase")
            obj["id"] = found = len(objects)
            objects.append(obj)
        else:
            labels = objects[found]["labels"]
            if region.phrase and region.phrase not in labels:
                objects[found] = {**objects[found], "labels": [*labels, region.phrase]}
        span = list(region.span) if region.span else []
        phrases.append({"text": region.phrase, "span": span, "object": found})
    return {**record, "objects": objects, "phrases": phrases}


def choose_labels(record: Record, image: LoadedImage, ctx: Context) -> Record:
    """Each object's label: the candidate the scorer (CLIP) matches best to its masked crop."""
    scorer = ctx.pipe.scorer
    objects = list(record["objects"])
    ambiguous = [i for i, o in enumerate(objects) if len(o["labels"]) > 1]
    for i, obj in enumerate(objects):
        if obj["labels"] and i not in ambiguous:
            objects[i] = {**obj, "label": obj["labels"][0]}
    if ambiguous and scorer is not None:
        masks = object_masks([objects[i] for i in ambiguous], image.height, image.width)
        crops = mask_crops(image.pixels, list(masks))
        embeddings = scorer.embed_images(crops)
        for row, i in enumerate(ambiguous):
            texts = scorer.embed_texts(objects[i]["labels"])
            best = int(np.argmax(texts @ embeddings[row]))
            objects[i] = {**objects[i], "label": objects[i]["labels"][best]}
    return {**record, "objects": objects}


def relate(record: Record, image: LoadedImage, ctx: Context) -> Record:
    """Geometric relations between nearby objects: the image's scene graph."""
    k = ctx.settings.relations_per_object
    return {**record, "relations": scene_relations(record["objects"], image.height, image.width, k)}


def scene_graph_text(record: Record) -> str:
    """The scene graph as one line of objects and one of relations (the LM's prompt)."""
    objects = "; ".join(f"{o['id']} {object_name(o)}" for o in record["objects"])
    relations = "; ".join(
        f"{r['subject']} {r['predicate']} {r['object']}" for r in record.get("relations", [])
    )
    return f"Objects: {objects}. Relations: {relations or 'none'}."


def template_caption(record: Record) -> str:
    """A deterministic dense caption from the scene graph, each object marked ``<p>name</p>``
    at its first mention (later mentions stay plain text)."""
    objects = {o["id"]: o for o in record["objects"]}
    said: set[int] = set()

    def mention(i: int) -> str:
        name = object_name(objects[i])
        if i in said:
            return name
        said.add(i)
        return f"<p>{name}</p>"

    sentences = []
    for rel in record.get("relations", []):
        subject, other = rel["subject"], rel["object"]
        if subject in said or subject not in objects or other not in objects:
            continue
        sentences.append(f"{mention(subject)} is {rel['predicate']} {mention(other)}")
    rest = [mention(i) for i in objects if i not in said]
    if rest:
        sentences.append("there is " + ", ".join(rest))
    text = ". ".join(sentences)
    return (text[:1].upper() + text[1:] + ".") if text else ""


def verify(markup: str, record: Record) -> tuple[str, list[dict[str, Any]], list[str]]:
    """Keep the caption's phrases that name an object of the image; drop the others.

    A phrase names an object when its words equal the object's name, attribute or a label
    (case and articles ignored), or contain a label as whole words. Each object is named once.

    Returns:
        (plain caption text, kept phrases with spans and object ids, dropped phrase texts).
    """
    text, phrases = parse_marked_phrases(markup.replace(SEG, ""))
    text = " ".join(text.split()) if not phrases else text
    used: set[int] = set()
    kept, dropped = [], []
    for phrase in phrases:
        found = _named_object(phrase.text, record["objects"], used)
        if found is None:
            dropped.append(phrase.text)
            continue
        used.add(found)
        kept.append({"text": phrase.text, "span": [phrase.start, phrase.end], "object": found})
    return text, kept, dropped


def _words(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return " ".join(w for w in words if w not in ("a", "an", "the"))


def _named_object(phrase: str, objects: list[dict[str, Any]], used: set[int]) -> int | None:
    wanted = _words(phrase)
    if not wanted:
        return None
    for exact in (True, False):
        for obj in objects:
            if obj["id"] in used:
                continue
            candidates = (object_name(obj), obj.get("attribute"), *obj["labels"])
            names = {_words(n) for n in candidates if n}
            names.discard("")
            if exact and wanted in names:
                return int(obj["id"])
            if not exact and any(re.search(rf"\b{re.escape(n)}\b", wanted) for n in names):
                return int(obj["id"])
    return None


def gcg_markup(text: str, phrases: list[dict[str, Any]]) -> str:
    """``text`` with each kept phrase marked ``<p>phrase</p> [SEG]`` (GCG form)."""
    out, cursor = [], 0
    for phrase in sorted(phrases, key=lambda p: p["span"][0]):
        start, end = phrase["span"]
        out += [text[cursor:start], f"<p>{text[start:end]}</p> {SEG}"]
        cursor = end
    return "".join([*out, text[cursor:]])


def dense_caption(record: Record, image: LoadedImage, ctx: Context) -> Record:
    """A dense caption from the scene graph, verified phrase by phrase (GCG form).

    With a VLM the caption is written from a prompt of in-context examples and the image's
    scene graph; when none of its phrases survives verification, the template caption is used
    (``writer`` says which). Without a VLM the template is used.
    """
    if not record["objects"]:
        empty = {"text": "", "markup": "", "phrases": [], "dropped": [], "writer": "none"}
        return {**record, "dense_caption": empty}
    writer, markup, dropped_before = "template", template_caption(record), []
    vlm = ctx.pipe.vlm
    if vlm is not None:
        prompt = (
            "Write one dense caption of the image from its scene graph; mark every object you "
            "name as <p>name</p>.\n" + DENSE_EXAMPLES + scene_graph_text(record) + "\nCaption:"
        )
        answer = vlm.chat(image.pixels, prompt)
        text, kept, dropped = verify(answer, record)
        if kept:
            writer, markup = "vlm", answer
        else:
            dropped_before = dropped
    text, kept, dropped = verify(markup, record)
    caption = {
        "text": text,
        "markup": gcg_markup(text, kept),
        "phrases": kept,
        "dropped": dropped_before + dropped,
        "writer": writer,
    }
    return {**record, "dense_caption": caption}


def context(record: Record, image: LoadedImage, ctx: Context) -> Record:
    """Level 4: a paragraph of extra context from the VLM, kept as text."""
    answer = ctx.pipe.chat(image, CONTEXT_PROMPT, ground_answer=False)
    return {**record, "context": answer.text}


LEVEL2 = (
    Stage(
        "phrases",
        2,
        ground_phrases,
        roles=("segmenter",),
        any_of=("detector", "scorer"),
        uses=("parser",),
    ),  # fmt: skip
    Stage("labels", 2, choose_labels, uses=("scorer",)),
    Stage("relations", 2, relate),
)
LEVEL3 = (Stage("dense_caption", 3, dense_caption, uses=("vlm",)),)
LEVEL4 = (Stage("context", 4, context, roles=("vlm",)),)

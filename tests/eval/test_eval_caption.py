"""Caption metrics through pycocoevalcap: parity with COCOEvalCap itself, hand BLEU, errors."""

from __future__ import annotations

import contextlib
import io

import pytest

from pixelground.core.errors import DependencyMissingError, InputError
from pixelground.eval.metrics import caption as caption_module
from pixelground.eval.metrics.caption import (
    ALL_METRICS,
    caption_scores,
    java_available,
    ptb_tokenize,
)

pytest.importorskip("pycocoevalcap")
needs_java = pytest.mark.skipif(not java_available(), reason="Java is needed by pycocoevalcap")

REFERENCES = {
    "1": ["A man is riding a horse on the beach.", "A person rides a brown horse!"],
    "2": ["Two dogs play in the snow.", "Dogs running through snow."],
    "3": ["A red car parked on a street."],
}
CANDIDATES = {"1": "a man riding a horse", "2": "two dogs playing in snow", "3": "a red car"}


def _coco_eval_cap(references, candidates):
    """COCOEvalCap.evaluate's steps on in-memory captions (SPICE removed: it needs a download).

    The METEOR scorer is pycocoevalcap's own ``Meteor`` class; the instance our module keeps
    is reused so that its Java process loads its tables once for the whole test run.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    gts = {k: [{"caption": c} for c in v] for k, v in references.items()}
    res = {k: [{"caption": v}] for k, v in candidates.items()}
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        tokenizer = PTBTokenizer()
        gts, res = tokenizer.tokenize(gts), tokenizer.tokenize(res)
        scorers = [
            (Bleu(4), ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"]),
            (caption_module.meteor_scorer(), ["METEOR"]),
            (Rouge(), ["ROUGE_L"]),
            (Cider(), ["CIDEr"]),
        ]
        for scorer, names in scorers:
            score, _ = scorer.compute_score(gts, res)
            for name, value in zip(names, score if len(names) > 1 else [score], strict=True):
                out[name] = float(value)
    return out


@pytest.mark.slow
@needs_java
def test_parity_with_coco_eval_cap():
    ours = caption_scores(REFERENCES, CANDIDATES)
    official = _coco_eval_cap(REFERENCES, CANDIDATES)
    for name in ALL_METRICS:
        assert ours[name] == pytest.approx(official[name], abs=1e-9), name
    assert ours["count"] == 3 and "SPICE" in ours["omitted"]
    assert [row["id"] for row in ours["per_sample"]] == ["1", "2", "3"]
    assert all(0 <= row["Bleu_1"] <= 1 for row in ours["per_sample"])


@needs_java
def test_ptb_tokenizer_and_hand_bleu1():
    tokens = ptb_tokenize({"a": ["A man, riding a horse!"], "b": ["Don't stop."]})
    assert tokens == {"a": ["a man riding a horse"], "b": ["do n't stop"]}
    # candidate "a cat sat" vs reference "a cat sat on the mat": every unigram matches, so
    # precision is 1 and the brevity penalty is exp(1 - 6/3) (reference 6 words, candidate 3)
    result = caption_scores({"x": "A cat sat on the mat."}, {"x": "a cat sat"}, metrics=["BLEU"])
    import math

    assert result["Bleu_1"] == pytest.approx(math.exp(1 - 6 / 3), rel=1e-6)
    assert set(result) >= {"Bleu_1", "Bleu_4"} and "METEOR" not in result


def test_errors_and_missing_java(monkeypatch):
    with pytest.raises(InputError, match="unknown caption metric"):
        caption_scores(REFERENCES, CANDIDATES, metrics=["SPICE"])
    with pytest.raises(InputError, match="no reference caption"):
        caption_scores(REFERENCES, {"9": "x"})
    monkeypatch.setattr(caption_module.shutil, "which", lambda name: None)
    with pytest.raises(DependencyMissingError, match="Java"):
        caption_scores(REFERENCES, CANDIDATES, metrics=["BLEU"])

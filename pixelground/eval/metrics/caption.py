"""Caption metrics through pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D.

Computed as ``pycocoevalcap.eval.COCOEvalCap.evaluate`` does (the code GLaMM's GCG and region
caption evaluations call): every caption is first lower-cased and tokenised by the Stanford
PTBTokenizer (CoreNLP 3.4.1, run in Java) with punctuation tokens removed, then scored by
``Bleu(4)`` (option "closest"), ``Meteor()`` (METEOR 1.5 jar, ``-l en -norm``), ``Rouge()``
(ROUGE-L, beta 1.2) and ``Cider()``, which is CIDEr-D (clipped n-gram counts, Gaussian length
penalty sigma 6, x10). Corpus-level values are those pycocoevalcap returns; CIDEr-D's IDF comes
from the references of the evaluated set, so it depends on the whole set, not one image.

Requirements: the ``pycocoevalcap`` package (``pip install 'pixelground[eval]'``) and Java 8+
on PATH (the tokenizer and METEOR are Java programs).

**SPICE is left out**: it needs Stanford CoreNLP models that pycocoevalcap downloads at first
use, which machines without internet cannot do. Reports say so (key ``"omitted"``).

Tokenisation runs the same PTBTokenizer command as pycocoevalcap but writes its temporary file
to the system temp directory (not into site-packages) and captures the tokenizer's stderr.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pixelground.core.errors import DependencyMissingError, InputError, require

log = logging.getLogger(__name__)

ALL_METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
METRIC_GROUPS = {
    "BLEU": ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"),
    "METEOR": ("METEOR",),
    "ROUGE_L": ("ROUGE_L",),
    "CIDEr": ("CIDEr",),
}
# punctuation tokens pycocoevalcap's PTBTokenizer removes
PUNCTUATIONS = frozenset(
    [
        "''",
        "'",
        "``",
        "`",
        "-LRB-",
        "-RRB-",
        "-LCB-",
        "-RCB-",
        ".",
        "?",
        "!",
        ",",
        ":",
        "-",
        "--",
        "...",
        ";",
    ]
)
OMITTED = {"SPICE": "needs Stanford CoreNLP models downloaded at first use; not available offline"}


def require_java() -> str:
    """Path of the java executable, or DependencyMissingError saying how to get one."""
    java = shutil.which("java")
    if java is None:
        raise DependencyMissingError(
            "caption metrics need Java 8 or newer on PATH (pycocoevalcap's PTB tokenizer and "
            "METEOR are Java programs); install a JRE, e.g. apt-get install default-jre-headless"
        )
    return java


def ptb_tokenize(captions: Mapping[Hashable, Sequence[str]]) -> dict[Hashable, list[str]]:
    """Tokenise captions exactly as pycocoevalcap's PTBTokenizer (lower-case, no punctuation).

    Args:
        captions: id -> list of raw captions.

    Returns:
        id -> list of tokenised captions (same order), tokens joined by single spaces.
    """
    require("pycocoevalcap", "eval")
    from pycocoevalcap.tokenizer import ptbtokenizer

    java = require_java()
    jar = Path(ptbtokenizer.__file__).resolve().parent / ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR
    keys = [k for k, values in captions.items() for _ in range(len(values))]
    text = "\n".join(c.replace("\n", " ") for values in captions.values() for c in values)
    with tempfile.TemporaryDirectory(prefix="pixelground-ptb-") as tmp:
        source = Path(tmp) / "captions.txt"
        source.write_bytes(text.encode())
        cmd = [
            java,
            "-cp",
            str(jar),
            "edu.stanford.nlp.process.PTBTokenizer",
            "-preserveLines",
            "-lowerCase",
            str(source),
        ]
        done = subprocess.run(cmd, capture_output=True, check=False)
    if done.returncode != 0:
        raise DependencyMissingError(
            f"the PTB tokenizer (java) failed: {done.stderr.decode(errors='replace').strip()[:300]}"
        )
    lines = done.stdout.decode().split("\n")
    out: dict[Hashable, list[str]] = {k: [] for k in captions}
    for key, line in zip(keys, lines, strict=False):
        words = [w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS]
        out[key].append(" ".join(words))
    return out


_METEOR: Any = None
_METEOR_LOCK = threading.Lock()


def meteor_scorer() -> Any:
    """pycocoevalcap's ``Meteor()``, started once per process and reused.

    METEOR's Java process loads its paraphrase tables on first use (tens of seconds); later
    calls answer in milliseconds. A process that died is restarted.
    """
    global _METEOR
    from pycocoevalcap.meteor.meteor import Meteor

    with _METEOR_LOCK:
        if _METEOR is None or _METEOR.meteor_p.poll() is not None:
            require_java()
            _METEOR = Meteor()
    return _METEOR


def _scorers(metrics: Sequence[str]) -> list[tuple[Any, tuple[str, ...]]]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    factories = {"BLEU": lambda: Bleu(4), "METEOR": meteor_scorer, "ROUGE_L": Rouge, "CIDEr": Cider}
    return [(factories[group], METRIC_GROUPS[group]) for group in metrics]


def _normalise_groups(metrics: Sequence[str]) -> list[str]:
    groups: list[str] = []
    for name in metrics:
        key = {
            "bleu": "BLEU",
            "meteor": "METEOR",
            "rouge": "ROUGE_L",
            "rouge_l": "ROUGE_L",
            "cider": "CIDEr",
            "cider-d": "CIDEr",
        }.get(name.lower())
        if key is None:
            raise InputError(f"unknown caption metric {name!r}; use BLEU, METEOR, ROUGE_L, CIDEr")
        if key not in groups:
            groups.append(key)
    return groups


def caption_scores(
    references: Mapping[Hashable, Sequence[str] | str],
    candidates: Mapping[Hashable, str],
    metrics: Sequence[str] = ("BLEU", "METEOR", "ROUGE_L", "CIDEr"),
) -> dict[str, Any]:
    """Corpus and per-sample caption metrics, as COCOEvalCap computes them.

    Only ids present in both mappings are scored (as GLaMM does, by setting
    ``params['image_id']`` to the predicted ids); the others are counted.

    Args:
        references: id -> reference caption(s).
        candidates: id -> the one candidate caption.
        metrics: any of "BLEU" (Bleu_1..4), "METEOR", "ROUGE_L", "CIDEr" (CIDEr-D).

    Returns:
        {"Bleu_1".."Bleu_4", "METEOR", "ROUGE_L", "CIDEr" (those asked), "count",
         "missing_candidates", "omitted", "per_sample": [{"id", metric: value}]}.
    """
    require("pycocoevalcap", "eval")
    groups = _normalise_groups(metrics)
    ids = _scored_ids(references, candidates)
    refs = {
        k: [references[k]] if isinstance(references[k], str) else list(references[k]) for k in ids
    }
    if any(len(v) == 0 for v in refs.values()):
        raise InputError("every scored image needs at least one reference caption")
    gts = ptb_tokenize(refs)
    res = ptb_tokenize({k: [candidates[k]] for k in ids})
    out: dict[str, Any] = {}
    per_sample: dict[Hashable, dict[str, Any]] = {k: {"id": k} for k in ids}
    for factory, names in _scorers(groups):
        scorer = factory()
        with contextlib.redirect_stdout(io.StringIO()):
            if names[0] == "Bleu_1":
                score, scores = scorer.compute_score(gts, res, verbose=0)
            else:
                score, scores = scorer.compute_score(gts, res)
        values = [score] if len(names) == 1 else list(score)
        per_values = [scores] if len(names) == 1 else list(scores)
        for name, value, values_i in zip(names, values, per_values, strict=True):
            out[name] = float(value)
            for k, v in zip(gts.keys(), values_i, strict=True):
                per_sample[k][name] = float(v)
    out.update(count=len(ids), missing_candidates=len(references) - len(ids))
    out.update(omitted=dict(OMITTED), per_sample=list(per_sample.values()))
    return out


def _scored_ids(
    references: Mapping[Hashable, Sequence[str] | str], candidates: Mapping[Hashable, str]
) -> list[Hashable]:
    """The ids with a reference and a candidate; InputError for candidates without a
    reference or when none is left."""
    unknown = [k for k in candidates if k not in references]
    if unknown:
        raise InputError(
            f"{len(unknown)} candidate ids have no reference caption (e.g. {unknown[0]!r}); "
            "check that predictions and ground truth use the same image ids"
        )
    ids = [k for k in references if k in candidates]
    if not ids:
        raise InputError("no candidate caption matches a reference id; nothing to score")
    return ids


def java_available() -> bool:
    """True when a java executable is on PATH (tests skip caption metrics otherwise)."""
    return shutil.which("java") is not None and os.access(shutil.which("java") or "", os.X_OK)

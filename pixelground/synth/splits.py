"""Train / val / test splits, held-out colour+kind combinations, and per-sample seeds.

- ``train`` and ``val`` scenes never contain a held-out (colour, kind) combination, and no
  train/val expression names one (not even as a no-target description), so the model never
  sees those words together.
- ``test`` scenes contain at least one shape of a held-out combination, and every test
  expression with targets refers to at least one such shape. No-target test expressions are
  unrestricted.
- ``val_heldout`` follows the test policy with samples of its own: a validation split of the
  held-out combinations (as CLEVR CoGenT's valB), for choosing what generalises to them
  without reading the test split.
- ``paraphrase`` (referring only) holds test's scenes, queries and targets, worded by a second,
  independent set of templates (``paraphrase.py``); it is never used for training (it has no
  fine-tuning file) or for choosing options.

Each sample has its own generator seeded by (seed, task, split, index), so a sample does not
depend on how many others were generated, and splits of one seed never share a sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelground.synth.scene import COLOURS, KINDS, Pair, Shape

SPLITS: tuple[str, ...] = ("train", "val", "test", "val_heldout", "paraphrase")
#: Splits that word another split's samples anew -> that split.
REWORDED_SPLITS: dict[str, str] = {"paraphrase": "test"}
#: Tasks a reworded split exists for.
REWORDED_TASKS: tuple[str, ...] = ("refer",)
#: Splits whose scenes must show a held-out combination.
HELD_OUT_SPLITS: tuple[str, ...] = ("test", "val_heldout")
TASKS: tuple[str, ...] = ("refer", "gcg", "region", "video")
#: One held-out kind per colour and one colour per kind, so every colour and every kind is
#: still seen in training, each with four other partners.
HELD_OUT_PAIRS: tuple[Pair, ...] = (
    ("red", "star"),
    ("green", "triangle"),
    ("blue", "hexagon"),
    ("yellow", "circle"),
    ("purple", "square"),
    ("orange", "ellipse"),
)


@dataclass(frozen=True)
class SplitPolicy:
    """What a split may contain.

    Attributes:
        name: one of SPLITS.
        pairs: (colour, kind) combinations scenes are sampled from.
        required_pairs: every scene contains a shape of one of these (empty: no requirement).
        held_out: the held-out combinations.
    """

    name: str
    pairs: tuple[Pair, ...]
    required_pairs: tuple[Pair, ...]
    held_out: tuple[Pair, ...]

    @property
    def is_test(self) -> bool:
        """True for the split that probes held-out combinations."""
        return bool(self.required_pairs)

    def accepts(self, targets: Sequence[Shape], named_pairs: Sequence[Pair]) -> bool:
        """Whether an expression (or caption) may be in this split.

        Args:
            targets: the shapes it refers to (empty for a no-target expression).
            named_pairs: the (colour, kind) combinations its words name.
        """
        held = set(self.held_out)
        if not self.is_test:
            return not any(s.pair in held for s in targets) and not any(
                p in held for p in named_pairs
            )
        return not targets or any(s.pair in held for s in targets)


def split_policy(
    split: str,
    kinds: Sequence[str] = KINDS,
    colours: Sequence[str] = tuple(COLOURS),
    held_out: Sequence[Pair] = HELD_OUT_PAIRS,
) -> SplitPolicy:
    """The policy of a split (a reworded split's is that of the split it rewords, name
    included, so that its samples are that split's); raises ValueError for an unknown split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    split = REWORDED_SPLITS.get(split, split)
    all_pairs = tuple((c, k) for c in colours for k in kinds)
    held = tuple(p for p in held_out if p in all_pairs)
    if split in HELD_OUT_SPLITS:
        return SplitPolicy(split, all_pairs, held, held)
    return SplitPolicy(split, tuple(p for p in all_pairs if p not in held), (), held)


def sample_rng(seed: int, task: str, split: str, index: int) -> np.random.Generator:
    """The generator of one sample, from (seed, task, split, index); all must be >= 0."""
    key = [int(seed), TASKS.index(task), SPLITS.index(split), int(index)]
    return np.random.default_rng(np.random.SeedSequence(key))


def expression_filter(policy: SplitPolicy, shapes: Sequence[Shape]) -> Callable[[Any], bool]:
    """An ``accept`` callback for ``language.generate_expressions`` enforcing the policy."""
    by_id = {s.id: s for s in shapes}

    def accept(expression: Any) -> bool:
        targets = [by_id[i] for i in expression.targets]
        return policy.accepts(targets, named_pairs(expression.query))

    return accept


def named_pairs(query: dict[str, Any]) -> list[Pair]:
    """(colour, kind) combinations named by a query's descriptions."""
    out = []
    for key in ("desc", "anchor"):
        desc = query.get(key) or {}
        if desc.get("colour") and desc.get("kind"):
            out.append((desc["colour"], desc["kind"]))
    return out

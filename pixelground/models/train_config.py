"""The configuration of a training run: one flat JSON object of training keys (TrainConfig)
and model keys (SegModelConfig), split by :func:`split_flat_config`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pixelground.core.errors import InputError
from pixelground.models.config import SegModelConfig
from pixelground.models.losses import LOSS_TERMS

PRECISIONS = ("auto", "fp32", "bf16")
#: Model fields that may change when fine-tuning from a checkpoint.
FINETUNE_OVERRIDES = (
    "lm_loss_weight",
    "bce_loss_weight",
    "dice_loss_weight",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "max_length",
    "max_new_tokens",
)


@dataclass
class TrainConfig:
    """A training run (flat; JSON-serialisable).

    Attributes:
        data: training JSONL file(s).
        out: run directory (checkpoints, log).
        val_data: optional validation JSONL file(s) (teacher-forced loss and mask IoU).
        init_from: checkpoint to fine-tune from (None: a new model from the model config).
        steps: total optimizer steps.
        batch_size: samples per micro-batch.
        grad_accum: micro-batches per optimizer step.
        lr: peak learning rate (AdamW).
        min_lr_ratio: final learning rate as a fraction of ``lr`` (cosine decay).
        warmup_steps: linear warmup steps.
        weight_decay: AdamW weight decay of matrices.
        max_grad_norm: gradient clipping (0: off).
        precision: "auto" (bf16 autocast on CUDA with bf16, else fp32), "fp32" or "bf16".
        device: "auto"/None, "cpu", "cuda", "cuda:N", "mps".
        seed: seeds model init and data order.
        save_every: steps between checkpoints.
        log_every: steps between log lines.
        eval_every: steps between validations (0: only at the end, if val_data).
        val_samples: validation samples used.
        keep_checkpoints: step checkpoints kept.
        on_error: "skip" or "raise" for bad data lines.
        resume: continue the run found in ``out``.
        num_threads: torch CPU threads (0: torch's default).
        max_minutes: training-time budget over all resumptions (0: none). The run stops and
            saves when it is spent, and the learning rate decays by time as well as by steps,
            so a run with a large ``steps`` uses the budget fully and ends annealed.
        group_by_image: batch the lines about one image together (each image is encoded once
            per batch, and its expressions can only be told apart by their text).
        first_data: JSONL file(s) to train on first, for ``first_minutes`` of training time,
            before ``data`` (a curriculum: region captions and grounded captions first teach
            the language model to read the image, which referring segmentation then needs).
        first_minutes: length of the first phase in minutes of training time (0 with
            ``first_data`` set and no ``first_steps``: no first phase).
        first_steps: length of the first phase in optimizer steps instead (0: by
            ``first_minutes``), for a first phase that must do a given amount of learning
            on a machine of any speed.
        first_loss_scale: loss term -> factor on its weight during the first phase, e.g.
            ``{"head_word_loss": 0}`` leaves a term out while the first phase teaches the
            language model to read the image.
        hue_augment: probability of rotating the hue of a line whose text names no colour
            (see ``data.SegDataset``).
        first_words_only: in the first phase, train the image features on the phrase-word
            losses alone (``objective.image_word_losses``): the language model and the
            mask decoder are not run, so a step costs about a third. Needs ``first_data``
            and a word loss (``word_loss_weight`` or ``head_word_loss_weight``).
        first_hue_augment: with ``first_words_only``, the probability of rotating the hue of a
            first-phase line's image whatever its text says; the phrase-word losses then
            leave the colour words out of that line's targets (``data.COLOUR_WORDS``), so the
            tower learns kind, size and texture apart from colour, where a fixed palette
            would let colour stand for kind.
        hue_drop_colours: after any first phase, the probability of rotating the hue of a
            line whose colour words are all in its answers (grounded captions, region
            descriptions), dropping those words from the answers and from the phrase-word
            targets (``data.SegDataset``'s ``colour_drop_hue``), so that kind is learnt apart
            from colour where most phrase words come from.
        vision_lr_scale: the vision tower's learning rate as a multiple of ``lr`` (its
            schedule is the same). A tower trained from scratch may need a higher rate than
            the language model to learn what a shape is in the time budget.
    """

    data: list[str] = field(default_factory=list)
    out: str = "runs/seg"
    val_data: list[str] | str | None = None
    init_from: str | None = None
    steps: int = 3000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    precision: str = "auto"
    device: str | None = None
    seed: int = 0
    save_every: int = 250
    log_every: int = 10
    eval_every: int = 0
    val_samples: int = 64
    keep_checkpoints: int = 2
    on_error: str = "skip"
    resume: bool = True
    num_threads: int = 0
    max_minutes: float = 0.0
    group_by_image: bool = True
    first_data: list[str] = field(default_factory=list)
    first_minutes: float = 0.0
    first_steps: int = 0
    first_loss_scale: dict[str, float] = field(default_factory=dict)
    hue_augment: float = 0.0
    vision_lr_scale: float = 1.0
    first_words_only: bool = False
    first_hue_augment: float = 0.0
    hue_drop_colours: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.data, str):
            self.data = [self.data]
        self.data = [str(p) for p in self.data]
        if isinstance(self.val_data, str):
            self.val_data = [self.val_data]
        if isinstance(self.first_data, str):
            self.first_data = [self.first_data]
        if self.first_steps < 0:
            raise InputError(f"first_steps must be >= 0, got {self.first_steps}")
        if not (self.first_minutes or self.first_steps):
            self.first_data = []
        unknown = sorted(set(self.first_loss_scale) - set(LOSS_TERMS))
        if unknown:
            raise InputError(f"first_loss_scale: unknown loss terms {unknown}; use {LOSS_TERMS}")
        if not self.data:
            raise InputError("no training data; set 'data' to one or more JSONL files")
        if self.first_words_only and not self.first_data:
            raise InputError(
                "first_words_only needs a first phase: set first_data and first_minutes "
                "or first_steps"
            )
        if not 0 <= self.first_hue_augment <= 1:
            raise InputError(f"first_hue_augment must be in [0, 1], got {self.first_hue_augment}")
        if self.first_hue_augment and not self.first_words_only:
            raise InputError(
                "first_hue_augment needs first_words_only: a rotated image's colour words "
                "would be wrong for the language model"
            )
        for name in ("hue_augment", "hue_drop_colours"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not self.vision_lr_scale > 0:
            raise InputError(f"vision_lr_scale must be > 0, got {self.vision_lr_scale}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if min(self.steps, self.batch_size, self.grad_accum, self.save_every, self.log_every) < 1:
            raise InputError("steps, batch_size, grad_accum, save_every and log_every must be >= 1")


def split_flat_config(data: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """Split one flat dict into a TrainConfig and model-config overrides.

    Raises:
        InputError: a key that is neither a training nor a model field.
    """
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    model_keys = SegModelConfig.field_names()
    unknown = sorted(set(data) - train_keys - model_keys)
    if unknown:
        raise InputError(
            f"unknown config keys {unknown}; training keys: {sorted(train_keys)}; "
            f"model keys: {sorted(model_keys)}"
        )
    train_cfg = TrainConfig(**{k: v for k, v in data.items() if k in train_keys})
    return train_cfg, {k: v for k, v in data.items() if k in model_keys}

"""Training and fine-tuning loop of the [SEG]-token model (CPU, CUDA or MPS).

``train(TrainConfig(...))`` reads the JSONL data, builds a model (or resumes the run in
``out``, or starts from ``init_from``), and trains with AdamW, warmup + cosine schedule,
gradient accumulation and bf16 autocast where the device has it. Every ``save_every`` steps,
at the end, and on KeyboardInterrupt it writes an atomic step checkpoint (model, tokenizer,
optimizer, scheduler, step, RNG) to ``out``. The curve goes to ``out/train_log.jsonl``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pixelground.backends.loading import load_pretrained, select_device
from pixelground.core.errors import CheckpointMissingError, InputError
from pixelground.models.checkpoints import STATE_NAME, find_checkpoint, save_checkpoint
from pixelground.models.config import SegModelConfig
from pixelground.models.data import SegDataset, collate, read_finetune_jsonl
from pixelground.models.losses import LOSS_TERMS
from pixelground.models.objective import image_word_losses, training_losses
from pixelground.models.seg_model import SegTokenModel
from pixelground.models.tokenizer import (
    add_markup_tokens,
    build_word_tokenizer,
    count_unknown,
    phrase_tokens,
)
from pixelground.models.train_config import (
    FINETUNE_OVERRIDES,
    TrainConfig,
)

logger = logging.getLogger(__name__)

LOG_NAME = "train_log.jsonl"


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast where the device has it (``precision="auto"``), else a no-op."""
    kind = device.split(":")[0]
    if precision == "auto":
        use = kind == "cuda" and torch.cuda.is_bf16_supported()
    else:
        use = precision == "bf16"
    return torch.autocast(kind, dtype=torch.bfloat16) if use else contextlib.nullcontext()


def lr_factor(step: int, warmup: int, progress: float, floor: float) -> float:
    """Linear warmup to 1 over ``warmup`` steps, then cosine decay to ``floor`` at progress 1."""
    if step < warmup:
        return (step + 1) / warmup
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def _batch_stream(
    groups: list[list[int]], batch: int, seed: int, start: int
) -> Iterator[list[int]]:
    """Batches of sample indices from micro-batch ``start`` on.

    Each epoch visits the groups (samples sharing an image, or single samples) in a seeded
    order and fills batches of at most ``batch`` samples with whole groups (a group larger
    than ``batch`` is split), so a batch encodes each of its images once and holds several
    expressions about the same image, which only the text can tell apart.
    """
    produced, epoch = 0, 0
    while True:
        generator = torch.Generator().manual_seed(seed + epoch)
        current: list[int] = []
        for g in torch.randperm(len(groups), generator=generator).tolist():
            for i in range(0, len(groups[g]), batch):
                piece = groups[g][i : i + batch]
                if len(current) + len(piece) > batch:
                    if produced >= start:
                        yield current
                    produced, current = produced + 1, []
                current = current + piece
        if current:
            if produced >= start:
                yield current
            produced += 1
        epoch += 1


def image_groups(
    samples: list[Any], enabled: bool = True, copies: list[int] | None = None
) -> list[list[int]]:
    """Indices of samples grouped by their frames (one group per sample when not ``enabled``).

    ``copies[i]`` tells apart repeats of a data file listed several times, so the copies of
    a line land in different groups (and batches).
    """
    if not enabled:
        return [[i] for i in range(len(samples))]
    found: dict[tuple[Any, ...], list[int]] = {}
    for i, sample in enumerate(samples):
        key = (copies[i] if copies else 0, *(str(f) for f in sample.frames))
        found.setdefault(key, []).append(i)
    return list(found.values())


@dataclass
class DataMix:
    """The samples of a list of JSONL files (a file listed k times counts k times)."""

    samples: list[Any]
    copies: list[int]
    skipped: int
    texts: list[str]

    @classmethod
    def read(cls, paths: list[str], on_error: str) -> DataMix:
        """Read and validate every file."""
        datasets = [read_finetune_jsonl(p, on_error) for p in paths]
        repeat = [paths[:k].count(p) for k, p in enumerate(paths)]
        return cls(
            samples=[s for d in datasets for s in d.samples],
            copies=[r for d, r in zip(datasets, repeat, strict=True) for _ in d.samples],
            skipped=sum(len(d.problems) for d in datasets),
            texts=[t for d in datasets for t in d.texts()],
        )


def parameter_groups(
    model: SegTokenModel, lr: float, weight_decay: float, vision_lr_scale: float
) -> list[dict[str, Any]]:
    """AdamW parameter groups of the trainable parameters: matrices with ``weight_decay``,
    vectors without, and the vision tower's at ``lr * vision_lr_scale`` (the others at
    ``lr``). Empty groups are left out; at a scale of 1 the tower is not a group of its own,
    so runs started before the option resume with the same two groups."""
    vision = {id(p) for p in model.vision.parameters()} if vision_lr_scale != 1.0 else set()
    groups = []
    for in_vision, scale in ((False, 1.0), (True, vision_lr_scale)):
        chosen = [
            p for p in model.parameters() if p.requires_grad and (id(p) in vision) == in_vision
        ]
        for params, decay in (
            ([p for p in chosen if p.dim() >= 2], weight_decay),
            ([p for p in chosen if p.dim() < 2], 0.0),
        ):
            if params:
                groups.append({"params": params, "weight_decay": decay, "lr": lr * scale})
    return groups


class Trainer:
    """One training run; see :func:`train`."""

    def __init__(
        self,
        config: TrainConfig,
        model_overrides: dict[str, Any] | None = None,
        on_step: Callable[[int, dict[str, float]], None] | None = None,
    ):
        self.cfg = config
        self.overrides = dict(model_overrides or {})
        self.on_step = on_step
        self.out = Path(config.out).expanduser()
        self.device = select_device(config.device)
        self.step = 0
        self.loss_scale: dict[str, float] = {}  # the phase's factors on the loss weights
        self.elapsed = 0.0  # seconds of training, over every resumption
        self.log_path = self.out / LOG_NAME
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        self.main = DataMix.read(config.data, config.on_error)
        self.first = DataMix.read(config.first_data, config.on_error) if config.first_data else None
        self.switch_step: int | None = None if self.first else 0
        self.samples = self.main.samples
        self.texts = self.main.texts + (self.first.texts if self.first else [])
        self._setup_model()
        if self.model.head("word") is not None:
            known = set(self.model.config.phrase_words)
            known.update(phrase_tokens(self.model.tokenizer, self.texts))
            self.model.config.phrase_words = tuple(sorted(known))
        has_word_heads = {"word", "head_word"} & set(self.model.heads)
        if config.first_words_only and not has_word_heads:
            raise InputError(
                "first_words_only needs word_loss_weight or head_word_loss_weight above 0"
            )
        self.dataset = SegDataset(self.samples, self.model.tokenizer, self.model.config)
        self.val = None
        if config.val_data:
            val = [s for p in config.val_data for s in read_finetune_jsonl(p, "skip").samples]
            picks = torch.randperm(len(val), generator=torch.Generator().manual_seed(0))
            val = [val[int(i)] for i in picks[: config.val_samples]]
            self.val = SegDataset(val, self.model.tokenizer, self.model.config, train=False)

    # ------------------------------------------------------------------ setup
    def _new_model(self) -> SegTokenModel:
        model_cfg = SegModelConfig.from_dict(self.overrides)
        prompts = [
            model_cfg.refer_template.replace("{expression}", ""),
            model_cfg.gcg_prompt,
            model_cfg.region_template,
        ]
        if model_cfg.tokenizer:
            from transformers import AutoTokenizer

            tokenizer = load_pretrained(AutoTokenizer, model_cfg.tokenizer)
            add_markup_tokens(tokenizer)
        else:
            tokenizer = build_word_tokenizer(self.texts + prompts, model_cfg.lowercase)
        torch.manual_seed(self.cfg.seed)
        return SegTokenModel(model_cfg, tokenizer)

    def _from_checkpoint(self, source: str) -> SegTokenModel:
        found = find_checkpoint(source)
        if found is None:
            raise CheckpointMissingError(
                f"no checkpoint in {source}; pass a directory written by `pixelground train`"
            )
        model = SegTokenModel.from_pretrained(found)
        ignored = sorted(set(self.overrides) - set(FINETUNE_OVERRIDES))
        if ignored:
            logger.warning("fine-tuning keeps the checkpoint's architecture; ignoring %s", ignored)
        for key in FINETUNE_OVERRIDES:
            if key in self.overrides and key != "lora_r":
                setattr(model.config, key, self.overrides[key])
        if self.overrides.get("lora_r", 0) > 0 and model.config.lora_r == 0:
            model.config.lora_r = int(self.overrides["lora_r"])
            model.wrap_lora()
        unknown, total = count_unknown(model.tokenizer, self.texts)
        if total and unknown / total > 0.02:
            logger.warning(
                "%.1f%% of the data's words are unknown to the checkpoint's tokenizer",
                100 * unknown / total,
            )
        return model

    def _setup_model(self) -> None:
        resume_from = find_checkpoint(self.out) if self.cfg.resume else None
        if resume_from is not None:
            logger.info("resuming from %s", resume_from)
            self.model = SegTokenModel.from_pretrained(resume_from)
        elif self.cfg.init_from:
            self.model = self._from_checkpoint(self.cfg.init_from)
        else:
            self.model = self._new_model()
        self.model.to(self.device)
        self.optimizer = torch.optim.AdamW(
            parameter_groups(
                self.model, self.cfg.lr, self.cfg.weight_decay, self.cfg.vision_lr_scale
            ),
            lr=self.cfg.lr,
        )
        cfg = self.cfg
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(s, cfg.warmup_steps, self.progress(s), cfg.min_lr_ratio),
        )
        if resume_from is not None and (resume_from / STATE_NAME).is_file():
            state = torch.load(resume_from / STATE_NAME, map_location="cpu", weights_only=True)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.step = int(state["step"])
            self.elapsed = float(state.get("elapsed", 0.0))
            switch = int(state.get("switch_step", 0))
            self.switch_step = None if switch < 0 else switch
            torch.set_rng_state(state["rng"])
            self._truncate_log(self.step)

    def progress(self, step: int) -> float:
        """Fraction of the run done: of ``steps``, or of ``max_minutes`` if that is further."""
        done = step / self.cfg.steps
        if self.cfg.max_minutes:
            done = max(done, self.elapsed / (60 * self.cfg.max_minutes))
        return min(1.0, done)

    def out_of_budget(self) -> bool:
        """Whether the run has reached ``steps`` or its ``max_minutes`` of training time."""
        late = bool(self.cfg.max_minutes) and self.elapsed >= 60 * self.cfg.max_minutes
        return self.step >= self.cfg.steps or late

    # ------------------------------------------------------------------ steps
    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _stream(self, mix: DataMix, start: int) -> Iterator[dict[str, torch.Tensor]]:
        dataset = SegDataset(
            mix.samples,
            self.model.tokenizer,
            self.model.config,
            hue_augment=self.cfg.hue_augment,
            colour_blind_hue=self.cfg.first_hue_augment if mix is self.first else 0.0,
            colour_drop_hue=0.0 if mix is self.first else self.cfg.hue_drop_colours,
        )
        groups = image_groups(mix.samples, self.cfg.group_by_image, mix.copies)
        for indices in _batch_stream(groups, self.cfg.batch_size, self.cfg.seed, start):
            yield collate([dataset[i] for i in indices], self.model.ids.pad)

    def _micro_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """Micro-batches of ``first_data`` for ``first_steps`` or ``first_minutes``, then of
        ``data``."""
        accum = self.cfg.grad_accum
        if self.first is not None and self.switch_step is None:
            self.loss_scale = dict(self.cfg.first_loss_scale)
            for batch in self._stream(self.first, self.step * accum):
                if self._first_phase_done():
                    self.switch_step = self.step
                    logger.info("first phase done at step %d; now training on 'data'", self.step)
                    break
                yield batch
        self.loss_scale = {}
        yield from self._stream(self.main, (self.step - (self.switch_step or 0)) * accum)

    def _first_phase_done(self) -> bool:
        if self.cfg.first_steps:
            return self.step >= self.cfg.first_steps
        return self.elapsed >= 60 * self.cfg.first_minutes

    def train_step(self, batches: Iterator[dict[str, torch.Tensor]]) -> dict[str, float]:
        """One optimizer step over ``grad_accum`` micro-batches (the caller steps the learning
        rate schedule); returns the mean loss terms."""
        self.model.train()
        totals = dict.fromkeys(("loss", *LOSS_TERMS), 0.0)
        for _ in range(self.cfg.grad_accum):
            batch = self._to_device(next(batches))
            # after the draw: drawing the first batch of 'data' is what ends the first phase
            words_only = self.cfg.first_words_only and self.switch_step is None
            with autocast(self.device, self.cfg.precision):
                losses = image_word_losses if words_only else training_losses
                out = losses(self.model, batch, self.loss_scale)
            (out["loss"] / self.cfg.grad_accum).backward()
            for key in totals:
                totals[key] += float(out[key].detach()) / self.cfg.grad_accum
        if self.cfg.max_grad_norm > 0:
            params = [p for p in self.model.parameters() if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return totals

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Teacher-forced validation: mean losses, answer-token accuracy, mask IoU, and
        ``val_image_gain``: how much higher the LM loss is when each line gets another line's
        image (about 0 while the language model still ignores the image)."""
        if self.val is None or len(self.val) == 0:
            return {}
        self.model.eval()
        sums = {"val_loss": 0.0, "val_lm_loss": 0.0, "val_point_loss": 0.0, "val_image_gain": 0.0}
        correct = tokens = 0
        ious: list[float] = []
        size = self.cfg.batch_size
        for start in range(0, len(self.val), size):
            items = [self.val[i] for i in range(start, min(start + size, len(self.val)))]
            batch = self._to_device(collate(items, self.model.ids.pad))
            with autocast(self.device, self.cfg.precision):
                out = training_losses(self.model, batch)
            sums["val_loss"] += float(out["loss"]) * len(items)
            sums["val_lm_loss"] += float(out["lm_loss"]) * len(items)
            sums["val_point_loss"] += float(out["point_loss"]) * len(items)
            if len(batch["pixel_values"]) > 1:
                swapped = {**batch, "pixel_values": batch["pixel_values"].roll(1, 0)}
                with autocast(self.device, self.cfg.precision):
                    other = training_losses(self.model, swapped)["lm_loss"]
                sums["val_image_gain"] += float(other - out["lm_loss"]) * len(items)
            predicted = out["logits"][:, :-1].argmax(-1)
            target = batch["labels"][:, 1:]
            keep = target != -100
            correct += int((predicted[keep] == target[keep]).sum())
            tokens += int(keep.sum())
            ious += _mask_ious(out["mask_logits"], batch["gt_masks"])
        result = {k: v / len(self.val) for k, v in sums.items()}
        result["val_token_acc"] = correct / max(tokens, 1)
        result["val_mask_iou"] = sum(ious) / len(ious) if ious else 0.0
        return result

    # ------------------------------------------------------------------ run
    def save(self) -> Path:
        """Write an atomic checkpoint of the current step."""
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "elapsed": self.elapsed,
            "switch_step": -1 if self.switch_step is None else self.switch_step,
        }

        def write(directory: Path) -> None:
            self.model.save_pretrained(directory)
            torch.save(state, directory / STATE_NAME)
            (directory / "train_config.json").write_text(
                json.dumps(dataclasses.asdict(self.cfg), indent=2)
            )

        return save_checkpoint(self.out, self.step, write, self.cfg.keep_checkpoints)

    def _log(self, record: dict[str, Any]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        logger.info(
            "%s",
            " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
            ),
        )

    def _truncate_log(self, step: int) -> None:
        """Drop log lines past ``step`` (written after the checkpoint we resume from)."""
        if not self.log_path.is_file():
            return
        lines = self.log_path.read_text().splitlines()
        kept = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", 0) <= step]
        self.log_path.write_text("".join(ln + "\n" for ln in kept))

    def _after_step(self, metrics: dict[str, float], window: dict[str, float]) -> None:
        """Log, validate, call back and checkpoint as the config asks after one step."""
        cfg = self.cfg
        window["_count"] = window.get("_count", 0.0) + 1
        for key, value in metrics.items():
            window[key] = window.get(key, 0.0) + value
        if self.step % cfg.log_every == 0 or self.out_of_budget():
            count = window.pop("_count")
            record: dict[str, Any] = {"step": self.step}
            record.update({k: v / count for k, v in window.items() if k != "_tick"})
            record["lr"] = self.scheduler.get_last_lr()[0]
            record["seconds"] = round(self.elapsed, 2)
            record["step_seconds"] = round((self.elapsed - window.get("_tick", 0.0)) / count, 3)
            self._log(record)
            window.clear()
            window["_tick"] = self.elapsed
        if cfg.eval_every and self.step % cfg.eval_every == 0 and self.val is not None:
            self._log({"step": self.step, **self.evaluate()})
        if self.on_step is not None:
            self.on_step(self.step, metrics)
        if self.step % cfg.save_every == 0:
            self.save()

    def run(self) -> Path:
        """Train until ``steps`` or ``max_minutes``; returns the final checkpoint directory."""
        logger.info(
            "training on %d samples (%d lines skipped), device %s, from step %d",
            len(self.dataset),
            self.main.skipped + (self.first.skipped if self.first else 0),
            self.device,
            self.step,
        )
        batches = self._micro_batches()
        window: dict[str, float] = {"_tick": self.elapsed}
        try:
            while not self.out_of_budget():
                began = time.monotonic()
                metrics = self.train_step(batches)
                self.step += 1
                self.elapsed += time.monotonic() - began
                self.scheduler.step()
                self._after_step(metrics, window)
        except KeyboardInterrupt:
            logger.warning("interrupted at step %d; saving a checkpoint", self.step)
            self.save()
            raise
        if self.step < self.cfg.steps:
            logger.warning(
                "time budget of %.1f min reached at step %d", self.cfg.max_minutes, self.step
            )
        if self.val is not None and not self.cfg.eval_every:
            self._log({"step": self.step, **self.evaluate()})
        if self.step % self.cfg.save_every == 0 and find_checkpoint(self.out) is not None:
            return find_checkpoint(self.out)  # type: ignore[return-value]
        return self.save()


def _mask_ious(logits: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """IoU of each predicted mask (logits > 0, resized to the target) with its target > 0.5."""
    if len(logits) == 0 or len(targets) != len(logits):
        return []
    size = targets.shape[-2:]
    pred = (
        torch.nn.functional.interpolate(
            logits[:, None].float(), size=size, mode="bilinear", align_corners=False
        )[:, 0]
        > 0
    )
    gt = targets > 0.5
    inter = (pred & gt).flatten(1).sum(1).float()
    union = (pred | gt).flatten(1).sum(1).float()
    return [float(i / u) if u > 0 else 1.0 for i, u in zip(inter, union, strict=True)]


def train(
    config: TrainConfig,
    model_overrides: dict[str, Any] | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> Path:
    """Run (or resume) a training run and return its final checkpoint directory.

    Args:
        config: the run.
        model_overrides: SegModelConfig fields for a new model (a few apply to fine-tuning:
            loss weights, LoRA, lengths).
        on_step: called after every optimizer step with (step, loss terms).

    Raises:
        KeyboardInterrupt: after saving a checkpoint of the step reached.
    """
    return Trainer(config, model_overrides, on_step).run()

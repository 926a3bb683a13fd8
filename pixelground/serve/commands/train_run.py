"""Handlers of ``pixelground train``, ``finetune`` and ``calibrate`` (see commands/train.py).

Kept apart from the parser so that ``pixelground`` starts without importing torch: the CLI
imports this module when one of these commands runs.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError
from pixelground.core.files import check_output_dir, write_text_atomic
from pixelground.models.checkpoints import find_checkpoint
from pixelground.models.data import read_finetune_jsonl
from pixelground.models.seg_model import CONFIG_NAME, SegTokenModel
from pixelground.models.target_decision import fit_target_decision
from pixelground.models.train import train
from pixelground.models.train_config import TrainConfig, split_flat_config
from pixelground.serve.commands.train import read_config


def _run(train_cfg: Any, overrides: dict[str, Any]) -> int:
    check_output_dir(train_cfg.out, "--out")

    logging.getLogger("pixelground.models").setLevel(logging.INFO)
    try:
        final = train(train_cfg, overrides)
    except KeyboardInterrupt:
        saved = find_checkpoint(train_cfg.out)
        print(f"interrupted; checkpoint saved in {saved}; run again to resume")
        return 130
    print(f"checkpoint: {final}")
    print(f"training curve: {Path(train_cfg.out) / 'train_log.jsonl'}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``pixelground train``."""

    data = read_config(args.config)
    for key in ("out", "steps", "device"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.no_resume:
        data["resume"] = False
    train_cfg, overrides = split_flat_config(data)
    return _run(train_cfg, overrides)


def run_finetune(args: argparse.Namespace) -> int:
    """Handler of ``pixelground finetune``."""

    out = args.out or f"{str(args.source).rstrip('/')}-finetuned"
    if Path(out).resolve() == Path(args.source).resolve():
        raise InputError("--out must differ from --from, or the checkpoint would be overwritten")
    train_cfg = TrainConfig(
        data=list(args.data),
        out=out,
        init_from=args.source,
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        warmup_steps=min(20, max(1, args.steps // 10)),
        save_every=max(1, min(100, args.steps)),
        on_error=args.on_error,
        device=args.device,
    )
    overrides = {"lora_r": args.lora_r} if args.lora_r else {}
    return _run(train_cfg, overrides)


def run_calibrate(args: argparse.Namespace) -> int:
    """Handler of ``pixelground calibrate``."""

    found = find_checkpoint(args.checkpoint)
    if found is None:
        raise InputError(f"no [SEG]-model checkpoint in {args.checkpoint}")
    samples = []
    for path in args.data:
        data = read_finetune_jsonl(path, on_error=args.on_error)
        for problem in data.problems:
            print(f"skipped: {problem}")
        samples.extend(data.samples)
    model = SegTokenModel.from_pretrained(found).eval()
    fit = fit_target_decision(model, samples)
    config_path = Path(found) / CONFIG_NAME
    config = json.loads(config_path.read_text())
    config["target_decision"] = list(fit.weights)
    write_text_atomic(config_path, json.dumps(config, indent=1))
    names = ("LM log-odds", "prior peak", "mask's word fit")
    terms = " + ".join(f"{w:.4f} * {n}" for w, n in zip(fit.weights[:-1], names, strict=False))
    print(f"{fit.lines} referring lines ({fit.targets} with a target)")
    print(f"target_decision: {terms} + {fit.weights[-1]:.4f}")
    print(f"  fitted:   N-acc {fit.n_acc:.3f}  T-acc {fit.t_acc:.3f}")
    print(f"  LM alone: N-acc {fit.lm_n_acc:.3f}  T-acc {fit.lm_t_acc:.3f}")
    print(f"written to {config_path}")
    return 0

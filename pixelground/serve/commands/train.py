"""``pixelground train``, ``finetune`` and ``calibrate``: train the [SEG]-token model.

    pixelground train CONFIG.json [--out DIR] [--steps N] [--device D] [--no-resume]
    pixelground finetune --data DATA.jsonl [DATA2.jsonl ...] --from CHECKPOINT [--out DIR]
                         [--steps N] [--on-error skip|raise] [--lr LR] [--batch-size B]
                         [--lora-r R] [--device D]
    pixelground calibrate CHECKPOINT --data VAL.jsonl [--on-error skip|raise]

``calibrate`` fits the checkpoint's ``target_decision`` (whether a referring expression has a
target: the LM's answer weighed with the coarse prior's peak) on validation lines in the
fine-tuning format and writes it into the checkpoint's config.json.

CONFIG.json is one flat JSON object mixing training keys (data, out, steps, batch_size, lr,
...) and model keys (image_size, lm_kwargs, decoder_dim, ...); see docs/models.md. A run
resumes from the latest checkpoint in its output directory. Ctrl-C saves a checkpoint first.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``train`` and ``finetune`` subcommands."""
    train = subparsers.add_parser(
        "train",
        help="train the [SEG]-token grounding model from a flat JSON config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("config", metavar="CONFIG.json", help="flat JSON training + model config")
    train.add_argument("--out", help="run directory (overrides the config's 'out')")
    train.add_argument("--steps", type=int, help="total optimizer steps (overrides the config)")
    train.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    train.add_argument("--no-resume", action="store_true", help="start over even if DIR has one")
    train.set_defaults(handler=run_train)

    tune = subparsers.add_parser(
        "finetune",
        help="fine-tune a trained [SEG]-token model on your JSONL data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tune.add_argument("--data", nargs="+", required=True, metavar="DATA.jsonl")
    tune.add_argument("--from", dest="source", required=True, metavar="CHECKPOINT")
    tune.add_argument("--out", help="run directory (default: CHECKPOINT-finetuned)")
    tune.add_argument("--steps", type=int, default=500, help="optimizer steps (default 500)")
    tune.add_argument("--on-error", default="skip", choices=("skip", "raise"),
                      help="bad data lines: skip them (default) or refuse the file")  # fmt: skip
    tune.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (default 2e-4)")
    tune.add_argument("--batch-size", type=int, default=8)
    tune.add_argument("--lora-r", type=int, default=0, help="LoRA rank on the LM (0: full)")
    tune.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    tune.set_defaults(handler=run_finetune)

    calibrate = subparsers.add_parser(
        "calibrate",
        help="fit a checkpoint's referring target decision on validation lines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    calibrate.add_argument("checkpoint", metavar="CHECKPOINT", help="model or run directory")
    calibrate.add_argument("--data", nargs="+", required=True, metavar="VAL.jsonl")
    calibrate.add_argument(
        "--on-error",
        default="skip",
        choices=("skip", "raise"),
        help="bad data lines: skip them (default) or refuse the file",
    )
    calibrate.set_defaults(handler=run_calibrate)


def read_config(path: str | Path) -> dict[str, Any]:
    """A flat JSON config; relative data paths (``data``, ``first_data``, ``val_data``) are
    taken from the config's folder if they exist there."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"config {path} not found; pass a flat JSON file (docs/models.md)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"config {path} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise InputError(f"config {path} must hold one JSON object of keys and values")
    for key in ("data", "first_data", "val_data"):
        value = data.get(key)
        if value is None:
            continue
        items = [value] if isinstance(value, str) else list(value)
        resolved = [_near(path.parent, item) for item in items]
        data[key] = resolved[0] if isinstance(value, str) else resolved
    return data


def _near(folder: Path, name: str) -> str:
    candidate = folder / name
    if not Path(name).is_absolute() and not Path(name).exists() and candidate.exists():
        return str(candidate)
    return name


def _run(train_cfg: Any, overrides: dict[str, Any]) -> int:
    from pixelground.models.checkpoints import find_checkpoint
    from pixelground.models.train import train

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
    from pixelground.models.train_config import split_flat_config

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
    from pixelground.models.train_config import TrainConfig

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
    from pixelground.models.checkpoints import find_checkpoint
    from pixelground.models.data import read_finetune_jsonl
    from pixelground.models.seg_model import CONFIG_NAME, SegTokenModel
    from pixelground.models.target_decision import fit_target_decision

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
    config_path.write_text(json.dumps(config, indent=1))
    names = ("LM log-odds", "prior peak", "mask's word fit")
    terms = " + ".join(f"{w:.4f} * {n}" for w, n in zip(fit.weights[:-1], names, strict=False))
    print(f"{fit.lines} referring lines ({fit.targets} with a target)")
    print(f"target_decision: {terms} + {fit.weights[-1]:.4f}")
    print(f"  fitted:   N-acc {fit.n_acc:.3f}  T-acc {fit.t_acc:.3f}")
    print(f"  LM alone: N-acc {fit.lm_n_acc:.3f}  T-acc {fit.lm_t_acc:.3f}")
    print(f"written to {config_path}")
    return 0

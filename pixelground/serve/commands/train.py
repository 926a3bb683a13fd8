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
from pixelground.serve.commands.common import lazy_handler

logger = logging.getLogger(__name__)
#: The handlers, which load torch and the model code: imported when one of them runs.
RUN_MODULE = "pixelground.serve.commands.train_run"


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
    train.set_defaults(handler=lazy_handler(RUN_MODULE, "run_train"))

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
    tune.set_defaults(handler=lazy_handler(RUN_MODULE, "run_finetune"))

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
    calibrate.set_defaults(handler=lazy_handler(RUN_MODULE, "run_calibrate"))


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

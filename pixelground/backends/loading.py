"""Loading real checkpoints: hub id or local directory, device and dtype selection.

Every backend loads its model through :func:`load_pretrained`, which calls the model
class's own ``from_pretrained``. A checkpoint that is neither a local directory nor in
the Hugging Face cache, while the hub is unreachable, is one CheckpointMissingError
naming the hub id, the cache path and how to pass a local directory instead.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import urllib.parse
from pathlib import Path
from typing import Any

from pixelground.core.errors import CheckpointMissingError, InputError, require

HUB_HOST = "huggingface.co"
#: Messages about downloads (the CLI shows this logger's INFO lines as "pixelground: ...").
download_log = logging.getLogger("pixelground.download")
#: Weight formats other than safetensors, skipped when a repository has safetensors.
OTHER_WEIGHTS = (".bin", ".pt", ".pth", ".h5", ".msgpack", ".onnx", ".ot", ".tflite", ".gguf")
DOWNLOAD_ATTEMPTS = 2


def hub_cache_dir() -> str:
    """The Hugging Face hub cache directory in use."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def is_local_checkpoint(source: str | Path) -> bool:
    """True when ``source`` names a local directory (not a hub id)."""
    text = str(source)
    return Path(text).expanduser().is_dir() or text.startswith(("/", "./", "../", "~"))


def is_cached(source: str, filename: str = "config.json") -> bool:
    """True when a hub checkpoint's ``filename`` is in the local cache (or ``source`` is a dir)."""
    if is_local_checkpoint(source):
        return (Path(source).expanduser() / filename).exists()
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(source, filename)
    return isinstance(found, str)


def hub_address() -> tuple[str, int]:
    """Host and port of the hub in use (``HF_ENDPOINT`` when set, else huggingface.co:443)."""
    endpoint = os.environ.get("HF_ENDPOINT") or f"https://{HUB_HOST}"
    parsed = urllib.parse.urlsplit(endpoint)
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    return parsed.hostname or HUB_HOST, port


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE asks for no network."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=4)
def _can_connect(address: tuple[str, int], timeout: float) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub (HF_ENDPOINT or huggingface.co) can be reached now.

    False when HF_HUB_OFFLINE is set; one connection attempt per address per process.
    """
    if hub_offline():
        return False
    return _can_connect(hub_address(), timeout)


def missing_checkpoint_message(source: str) -> str:
    """The one message a user sees when a checkpoint cannot be found."""
    if is_local_checkpoint(source):
        return (
            f"checkpoint directory {source} does not exist or has no config.json; pass a "
            "directory written by save_pretrained, or a hub id"
        )
    return (
        f"model '{source}' is not in the local cache ({hub_cache_dir()}) and the hub cannot be "
        f"reached. Download it on a machine with internet (huggingface-cli download {source}) "
        "and copy the cache, or pass a local directory instead of the hub id: "
        "--model ROLE=/path/to/dir on the command line, or "
        "pixelground.load(preset, ROLE='/path/to/dir') in Python"
    )


def check_available(source: str) -> None:
    """Raise CheckpointMissingError unless ``source`` is local, cached, or downloadable now."""
    if is_cached(source):
        return
    if is_local_checkpoint(source) or not hub_reachable():
        raise CheckpointMissingError(missing_checkpoint_message(source))


def download_plan(source: str) -> list[tuple[str, int]]:
    """(file, bytes) of a hub repository that ``from_pretrained`` needs: every file, without
    other weight formats when safetensors are there."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(source, files_metadata=True)
    files = [(s.rfilename, int(s.size or 0)) for s in info.siblings or []]
    if any(name.endswith(".safetensors") for name, _ in files):
        files = [(name, size) for name, size in files if not name.endswith(OTHER_WEIGHTS)]
    return files


def human_size(count: float) -> str:
    """Bytes as ``12.3 MB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


@contextlib.contextmanager
def _progress_bars() -> Any:
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    if was_disabled and os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") != "1":
        enable_progress_bars()
    try:
        yield
    finally:
        if was_disabled and os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") != "1":
            disable_progress_bars()


def download(source: str, attempts: int = DOWNLOAD_ATTEMPTS) -> None:
    """Download a hub checkpoint into the cache: one line saying what and how much, a
    progress bar per file, a broken download retried, then one error.

    Raises:
        CheckpointMissingError: the download failed ``attempts`` times (the message says why).
    """
    from huggingface_hub import snapshot_download

    for attempt in range(1, attempts + 1):
        try:
            files = download_plan(source)
            total = human_size(sum(size for _, size in files))
            download_log.info("downloading %s (%d files, %s) to %s", source, len(files), total,
                              hub_cache_dir())  # fmt: skip
            with _progress_bars():
                snapshot_download(source, allow_patterns=[name for name, _ in files])
            return
        except Exception as error:  # network and hub errors of several libraries
            reason = " ".join(str(error).split())[:300] or type(error).__name__
            if attempt == attempts:
                raise CheckpointMissingError(
                    f"downloading {source} failed {attempts} times ({reason}); check the "
                    "connection and run again: what was downloaded is kept in the cache"
                ) from error
            download_log.info("download of %s broke (%s); trying again", source, reason)


def load_pretrained(cls: Any, source: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(source, **kwargs)`` with a clear error when the checkpoint is missing.

    Args:
        cls: a class with ``from_pretrained`` (a transformers model or processor class).
        source: hub id or local directory.
        **kwargs: passed to ``from_pretrained``.

    Returns:
        Whatever ``from_pretrained`` returns.
    """
    check_available(source)
    if not is_local_checkpoint(source):
        if not hub_reachable():
            kwargs.setdefault("local_files_only", True)
        elif not is_cached(source):
            download(source)
    try:
        return cls.from_pretrained(
            str(Path(source).expanduser()) if is_local_checkpoint(source) else source, **kwargs
        )
    except OSError as error:
        raise CheckpointMissingError(f"{missing_checkpoint_message(source)} ({error})") from error


def select_device(device: str | None = None) -> str:
    """Choose a torch device: the one asked for, else cuda, then mps, then cpu.

    Raises:
        InputError: a device that this machine does not have.
    """
    torch = require("torch", "models")
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "device 'cuda' was asked for but no CUDA GPU is available; use --device cpu"
        )
    if kind == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise InputError(
            "device 'mps' was asked for but Apple MPS is not available; use --device cpu"
        )
    if kind not in ("cuda", "mps", "cpu"):
        raise InputError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def select_dtype(device: str, dtype: str | None = None) -> Any:
    """torch dtype: the one asked for, else float16 on cuda/mps and float32 on cpu."""
    torch = require("torch", "models")
    if dtype in (None, "", "auto"):
        return torch.float16 if device.split(":")[0] in ("cuda", "mps") else torch.float32
    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in names:
        raise InputError(f"unknown dtype {dtype!r}; use one of {', '.join(names)}")
    return names[dtype]

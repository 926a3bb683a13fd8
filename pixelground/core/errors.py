"""One exception family for errors a user can cause.

The CLI prints ``str(error)`` as one line and exits non-zero; the HTTP server answers
with a 4xx JSON body. Every message says what went wrong and what to do about it.
"""

from __future__ import annotations


class PixelgroundError(Exception):
    """Base class of every error a user can cause (bad input, unknown name, missing model)."""

    exit_code: int = 2
    http_status: int = 400


class InputError(PixelgroundError, ValueError):
    """Bad user input: unreadable or corrupt file, empty text, prompt outside the image."""


class UnknownNameError(PixelgroundError, KeyError):
    """A preset, backend, task or dataset name that does not exist."""

    http_status = 404

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class CheckpointMissingError(PixelgroundError, FileNotFoundError):
    """A checkpoint that is neither a local directory nor in the hub cache, while offline."""

    http_status = 503


class DependencyMissingError(PixelgroundError, ImportError):
    """An optional dependency (an extra) that is not installed."""

    http_status = 501


def require(module: str, extra: str) -> object:
    """Import an optional dependency or raise a clear error naming the extra to install.

    Args:
        module: Dotted module name, e.g. ``"torch"``.
        extra: The pixelground extra that provides it, e.g. ``"models"``.

    Returns:
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise DependencyMissingError(
            f"{module} is not installed; install it with: pip install 'pixelground[{extra}]'"
        ) from error

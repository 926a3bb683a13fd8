"""The ``pixelground`` command line: one argparse parser, subcommands from serve/commands/.

Each module in COMMAND_MODULES defines ``register(subparsers)``; a subcommand's handler
takes the parsed arguments and returns an exit code. Errors a user can cause
(PixelgroundError) become one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from collections.abc import Sequence

from pixelground.core.errors import PixelgroundError

COMMAND_MODULES = (
    "pixelground.serve.commands.image",
    "pixelground.serve.commands.synth",
    "pixelground.serve.commands.eval",
    "pixelground.serve.commands.video",
    "pixelground.serve.commands.train",
    "pixelground.serve.commands.serve",
    "pixelground.serve.commands.annotate",
)

log = logging.getLogger("pixelground")

#: Options whose values may start with a minus sign (``--point -5,10``).
NUMERIC_OPTIONS = ("--box", "--point", "--neg-point")
_NEGATIVE = re.compile(r"^-\d")


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """``--point -5,10`` as ``--point=-5,10``, so argparse does not read -5,10 as an option."""
    out: list[str] = []
    for token in argv:
        if out and out[-1] in NUMERIC_OPTIONS and _NEGATIVE.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="pixelground",
        description="Ground language in images and videos: text + pixel masks.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _show_downloads() -> None:
    """Downloads say what and how much in one "pixelground: ..." line, with progress bars;
    Hugging Face's other progress bars stay off (they would bury our one-line messages)."""
    from huggingface_hub.utils import disable_progress_bars
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # its retry warnings: ours is the one line that counts
    if os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") is None:
        disable_progress_bars()  # re-enabled by backends.loading.download while it runs
    downloads = logging.getLogger("pixelground.download")
    if not downloads.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("pixelground: %(message)s"))
        downloads.addHandler(handler)
        downloads.setLevel(logging.INFO)
        downloads.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _show_downloads()
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except PixelgroundError as error:
        print(f"pixelground: error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # the machine's answer (disk full, permissions), not a bug of ours
        where = f" ({error.filename})" if error.filename else ""
        print(f"pixelground: error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pixelground: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Named compositions of backends, one per use: default, quality, sa2va-*, tiny, shapes.

A preset maps roles (segmenter, detector, scorer, captioner, vlm, parser,
grounding_model, video_segmenter, dino, depth) to a backend name and a checkpoint (hub id, local
directory, ``tiny:NAME`` for a random-weight tiny model built on first use, or
``package:NAME`` for a checkpoint shipped inside the package, pixelground/checkpoints/NAME). Every
part can be overridden by role. ``auto`` picks the best preset whose checkpoints are
present locally, else ``default`` when the hub can be reached (it downloads), else the
bundled ``shapes`` with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from pixelground.backends.loading import (
    hub_cache_dir,
    hub_reachable,
    is_cached,
    is_local_checkpoint,
)
from pixelground.backends.registry import BACKENDS
from pixelground.core.errors import CheckpointMissingError, InputError, UnknownNameError

log = logging.getLogger(__name__)

ROLES = (
    "segmenter",
    "detector",
    "scorer",
    "captioner",
    "vlm",
    "parser",
    "grounding_model",
    "video_segmenter",
    "dino",
    "depth",
)
#: Roles only one mode needs (dino: ``semseg --mode cass``; depth: the data engine's depth
#: layers); ``auto`` does not wait for them.
OPTIONAL_ROLES = ("dino", "depth")


@dataclass(frozen=True)
class Part:
    """One role of a preset: which backend, from which checkpoint, with which options.

    Attributes:
        backend: a name in pixelground.backends.registry.BACKENDS.
        checkpoint: hub id, local directory, ``tiny:NAME``, ``package:NAME``, or None for
            backends without weights.
        options: extra keyword arguments for the backend constructor.
    """

    backend: str
    checkpoint: str | None = None
    options: tuple[tuple[str, object], ...] = ()

    @property
    def key(self) -> tuple:
        """Equal keys share one loaded instance (Florence-2 as detector and captioner)."""
        return (self.backend, self.checkpoint, self.options)


@dataclass(frozen=True)
class Preset:
    """A named composition of parts.

    Attributes:
        name: what users type.
        description: one line for ``pixelground presets``.
        parts: role -> Part.
        meaningful: False for random-weight presets whose output means nothing.
        compose: referring expressions are answered with the compositional strategy
            (tasks/compose.py) unless a call says otherwise; off in every built-in preset.
    """

    name: str
    description: str
    parts: dict[str, Part] = field(default_factory=dict)
    meaningful: bool = True
    compose: bool = False

    def with_overrides(self, overrides: dict[str, str]) -> Preset:
        """A copy whose roles take other checkpoints (hub ids or local directories).

        A value ``BACKEND:SOURCE`` (e.g. ``owlv2:google/owlv2-base-patch16-ensemble``) also
        changes the backend; a plain value keeps the role's backend.
        """
        parts = dict(self.parts)
        for role, source in overrides.items():
            if role not in ROLES:
                raise UnknownNameError(f"unknown role {role!r}; roles are: {', '.join(ROLES)}")
            backend, _, checkpoint = (
                source.partition(":") if _names_backend(source) else ("", "", source)
            )
            if not backend:
                if role not in parts:
                    raise InputError(
                        f"preset {self.name!r} has no {role}; name a backend: {role}=BACKEND:SOURCE"
                    )
                backend = parts[role].backend
            old_options = parts[role].options if role in parts else ()
            parts[role] = Part(backend, checkpoint or None, old_options)
        return replace(self, parts=parts)


def _names_backend(source: str) -> bool:
    head, sep, _ = source.partition(":")
    return bool(sep) and head in BACKENDS


def _florence(checkpoint: str) -> dict[str, Part]:
    part = Part("florence2", checkpoint)
    return {"detector": part, "captioner": part}


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in [
        Preset(
            "default",
            "Florence-2-base + SAM2.1-hiera-tiny + CLIP ViT-B/16 (+ SmolVLM-256M for chat)",
            {
                **_florence("florence-community/Florence-2-base"),
                "segmenter": Part("sam2", "facebook/sam2.1-hiera-tiny"),
                "scorer": Part("clip", "openai/clip-vit-base-patch16"),
                "dino": Part("dino", "facebook/dino-vitb8"),
                "depth": Part("depth", "depth-anything/Depth-Anything-V2-Small-hf"),
                "vlm": Part("vlm", "HuggingFaceTB/SmolVLM-256M-Instruct"),
                "parser": Part("textblob"),
                "video_segmenter": Part("sam2-video", "facebook/sam2.1-hiera-tiny"),
            },
        ),
        Preset(
            "quality",
            "Florence-2-large + Grounding DINO base + SAM2.1-hiera-large + CLIP ViT-B/16 "
            "(+ Qwen2.5-VL-3B for chat)",
            {
                "captioner": Part("florence2", "florence-community/Florence-2-large"),
                "detector": Part("grounding-dino", "IDEA-Research/grounding-dino-base"),
                "segmenter": Part("sam2", "facebook/sam2.1-hiera-large"),
                "scorer": Part("clip", "openai/clip-vit-base-patch16"),
                "dino": Part("dino", "facebook/dino-vitb8"),
                "depth": Part("depth", "depth-anything/Depth-Anything-V2-Base-hf"),
                "vlm": Part("vlm", "Qwen/Qwen2.5-VL-3B-Instruct"),
                "parser": Part("textblob"),
                "video_segmenter": Part("sam2-video", "facebook/sam2.1-hiera-large"),
            },
        ),
        *[
            Preset(
                f"sa2va-{size.lower()}",
                f"Sa2VA-{size} end to end (trust_remote_code) + SAM2.1-hiera-tiny + Florence-2-base",  # noqa: E501
                {
                    "grounding_model": Part(
                        "sa2va", f"ByteDance/Sa2VA-{size}", (("trust_remote_code", True),)
                    ),
                    **_florence("florence-community/Florence-2-base"),
                    "segmenter": Part("sam2", "facebook/sam2.1-hiera-tiny"),
                    "scorer": Part("clip", "openai/clip-vit-base-patch16"),
                    "parser": Part("textblob"),
                    "video_segmenter": Part("sam2-video", "facebook/sam2.1-hiera-tiny"),
                },
            )
            for size in ("1B", "4B")
        ],
        Preset(
            "shapes",
            "pixelground's own [SEG]-token model (9 MB, shipped), trained on generated scenes of "
            "shapes: referring segmentation, grounded captions and region captions of shapes, "
            "referring video segmentation of moving shapes; nothing else",
            {
                "grounding_model": Part("segtoken", "package:shapes"),
                "captioner": Part("segtoken", "package:shapes"),
            },
        ),
        Preset(
            "tiny",
            "random-weight tiny models of the default classes, built on first use: "
            "output is NOT meaningful (for tests and trying the plumbing)",
            {
                **_florence("tiny:florence2"),
                "segmenter": Part("sam2", "tiny:sam2"),
                "scorer": Part("clip", "tiny:clip"),
                "dino": Part("dino", "tiny:dino"),
                "depth": Part("depth", "tiny:depth"),
                "vlm": Part("vlm", "tiny:smolvlm"),
                "parser": Part("textblob"),
                "video_segmenter": Part("sam2-video", "tiny:sam2_video"),
            },
            meaningful=False,
        ),
    ]
}

#: Presets ``auto`` may pick, in order of preference (see resolve_auto); sa2va needs an
#: explicit trust_remote_code opt-in, and tiny is never meaningful.
AUTO_ORDER = ("quality", "default", "shapes")


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (``auto`` resolved to the best available one)."""
    if name == "auto":
        return resolve_auto()
    if name not in PRESETS:
        raise UnknownNameError(
            f"unknown preset {name!r}; presets: auto, {', '.join(PRESETS)} "
            "(pixelground presets lists them)"
        )
    return PRESETS[name]


PACKAGE_PREFIX = "package:"


def package_checkpoint(checkpoint: str) -> Path:
    """Directory of a ``package:NAME`` checkpoint shipped in pixelground/checkpoints/NAME."""
    name = checkpoint.removeprefix(PACKAGE_PREFIX)
    return Path(str(resources.files("pixelground") / "checkpoints" / name))


def part_available(part: Part) -> bool:
    """Whether a part can be loaded without the network (tiny parts are built locally)."""
    if part.checkpoint is None or part.checkpoint.startswith("tiny:"):
        return True
    if part.checkpoint.startswith(PACKAGE_PREFIX):
        return (package_checkpoint(part.checkpoint) / "config.json").exists()
    return is_cached(part.checkpoint)


#: Backends that answer free questions (chat) when a preset has no vlm part.
CHAT_GROUNDING_BACKENDS = ("sa2va",)


def can_chat(preset: Preset) -> bool:
    """Whether ``preset`` has a model that answers questions (a VLM or Sa2VA end to end)."""
    grounding = preset.parts.get("grounding_model")
    return "vlm" in preset.parts or (
        grounding is not None and grounding.backend in CHAT_GROUNDING_BACKENDS
    )


def override_checkpoint(source: str) -> str:
    """The checkpoint of a ``--model`` value: ``BACKEND:SOURCE`` without the backend name."""
    return source.partition(":")[2] if _names_backend(source) else source


def check_overrides(overrides: dict[str, str]) -> None:
    """Check ``role=source`` overrides before anything loads.

    Raises:
        UnknownNameError: a role that does not exist.
        InputError: a local directory that does not exist or holds no config.json (the
            message names the path as given).
    """
    for role, source in overrides.items():
        if role not in ROLES:
            raise UnknownNameError(f"unknown role {role!r}; roles are: {', '.join(ROLES)}")
        checkpoint = override_checkpoint(source)
        if checkpoint and is_local_checkpoint(checkpoint):
            folder = Path(checkpoint).expanduser()
            if not folder.is_dir():
                raise InputError(f"--model {role}={source}: {checkpoint} is not a directory")
            if not (folder / "config.json").exists():
                raise InputError(
                    f"--model {role}={source}: {checkpoint} holds no config.json; pass a "
                    "directory written by save_pretrained"
                )


def missing_parts(preset: Preset, optional: bool = False) -> dict[str, list[str]]:
    """Checkpoints of ``preset`` not present locally: checkpoint -> the roles that use it.

    Parts of OPTIONAL_ROLES (a missing DINO only stops ``--mode cass``) count with
    ``optional`` only.
    """
    missing: dict[str, list[str]] = {}
    for role, part in preset.parts.items():
        if (optional or role not in OPTIONAL_ROLES) and not part_available(part):
            missing.setdefault(str(part.checkpoint), []).append(role)
    return missing


def require_parts(preset: Preset) -> None:
    """Raise one CheckpointMissingError naming every missing part, unless they can download.

    Raises:
        CheckpointMissingError: some checkpoints are neither local nor cached, and the hub
            cannot be reached (or a local directory is missing).
    """
    missing = missing_parts(preset)
    local = [c for c in missing if is_local_checkpoint(c)]
    if not missing or (not local and hub_reachable()):
        return
    listing = "; ".join(f"{', '.join(roles)}: {c}" for c, roles in missing.items())
    hub_ids = " ".join(c for c in missing if c not in local)
    fix = f"Download them on a machine with internet (huggingface-cli download ID, for {hub_ids})"
    raise CheckpointMissingError(
        f"preset {preset.name!r} is missing {len(missing)} checkpoint(s), not in the local "
        f"cache ({hub_cache_dir()}) and the hub cannot be reached: {listing}. "
        f"{fix if hub_ids else 'Check the paths'}, or pass local directories with "
        "--model ROLE=/path/to/dir"
    )


#: Presets ``auto`` takes when all their checkpoints are cached, best first.
AUTO_CACHED = ("quality", "default")
#: What ``auto`` downloads when nothing better is cached and the hub is reachable.
AUTO_DOWNLOAD = "default"
#: The bundled fallback when offline with nothing cached.
AUTO_OFFLINE = "shapes"


def resolve_auto() -> Preset:
    """What ``auto`` means now.

    The best preset of AUTO_CACHED whose checkpoints are all cached; else ``default`` when
    the hub can be reached (its checkpoints download on first use); else the bundled
    ``shapes`` model, with a warning that it knows generated shapes only.
    """
    for name in AUTO_CACHED:
        if not missing_parts(PRESETS[name]):
            log.info("auto preset: using %r (all checkpoints cached)", name)
            return PRESETS[name]
    if hub_reachable():
        log.info("auto preset: using %r (downloading its checkpoints)", AUTO_DOWNLOAD)
        return PRESETS[AUTO_DOWNLOAD]
    if missing_parts(PRESETS[AUTO_OFFLINE]):  # an install without the shipped checkpoint
        log.warning("auto preset: nothing usable is cached, so using 'tiny' (not meaningful)")
        return PRESETS["tiny"]
    log.warning(
        "auto preset: the hub cannot be reached and no pretrained preset is cached, so using "
        "%r, which only knows generated scenes of shapes (use --preset, or download %s)",
        AUTO_OFFLINE,
        AUTO_DOWNLOAD,
    )
    return PRESETS[AUTO_OFFLINE]

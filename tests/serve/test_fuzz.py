"""Fuzzing the CLI entry point and the Python API: no outcome is ever a traceback.

Hypothesis generates arguments (odd text with control characters and very long strings,
negative and huge numbers, boxes, points, @FRAME) and bad files (random bytes named .jpg,
.png, .mp4, .json, .jsonl; truncated real images and videos; odd image sizes; paths that are
files, folders or missing). Every outcome must be a result (exit 0, or 1 for a batch with
failed images) or one ``pixelground: error:`` line with exit code 2; argparse's own usage
errors also exit 2. Anything else (an exception escaping ``main``) fails the test.

The model is the real shipped ``shapes`` preset, loaded once and handed to every command
(loading it per case would spend the time budget on loading). Example counts are bounded so
both tests together run in well under a minute; the number of cases tried is printed.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import pixelground
from pixelground.core.errors import PixelgroundError
from pixelground.serve import cli
from pixelground.serve.commands import common

pytestmark = pytest.mark.slow

CLI_EXAMPLES = int(os.environ.get("PIXELGROUND_FUZZ_CLI", "100"))
API_EXAMPLES = int(os.environ.get("PIXELGROUND_FUZZ_API", "40"))
#: Inputs that decode to an image run the model (seconds each on 2 shared cores): the API
#: fuzz leaves them out, so its cases go to the error paths (success paths have own tests).
DECODABLE = ("good.jpg", "jpg_named.json", "tiny.png", "thin.png", "png_named.mp4")
COUNTS = {"cli": 0, "api": 0}


@pytest.fixture(scope="module")
def shapes_pipeline():
    return pixelground.load("shapes", device="cpu")


def _png(width: int, height: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory, swan_image_path: Path) -> dict[str, Path]:
    """Named bad (and a few good) inputs, made once."""
    root = tmp_path_factory.mktemp("fuzz")
    real = swan_image_path.read_bytes()
    rng = np.random.default_rng(0)
    made = {
        "good.jpg": real,
        "truncated.jpg": real[: len(real) // 3],
        "header_only.jpg": real[:200],
        "empty.png": b"",
        "noise.jpg": rng.bytes(3000),
        "noise.png": rng.bytes(500),
        "noise.mp4": rng.bytes(4000),
        "noise.json": rng.bytes(300),
        "noise.jsonl": rng.bytes(300),
        "text.json": b'{"version": 1, "task": "segment", "regions": [1, 2',
        "list.json": b"[1, 2, 3]",
        "lines.jsonl": b'{"id": 1}\n{"id": \n',
        "tiny.png": _png(1, 1, 1),
        "thin.png": _png(2000, 2, 2),
        "png_named.mp4": _png(16, 16, 3),
        "jpg_named.json": real,
    }
    for name, data in made.items():
        (root / name).write_bytes(data)
    (root / "folder").mkdir()
    (root / "frames").mkdir()
    for index in range(3):
        (root / "frames" / f"{index:05d}.jpg").write_bytes(real if index != 1 else real[:900])
    (root / "mixed").mkdir()
    (root / "mixed" / "a.jpg").write_bytes(real)
    (root / "mixed" / "b.png").write_bytes(b"not a png")
    return {**{name: root / name for name in made}, **{
        "folder": root / "folder", "frames": root / "frames", "mixed": root / "mixed",
        "missing": root / "missing.jpg", "under_file": root / "good.jpg" / "x.json",
        "out_dir": root / "out",
    }}  # fmt: skip


odd_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.sampled_from(["the black swan", "", " ", "\x00\x01\x1b[31m", "a" * 5000, "-x", "@0"]),
)
number = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["nan", "inf", "1e400", "", "x"]),
)
coords = st.lists(number, min_size=0, max_size=5).map(",".join)
at_frame = st.one_of(st.just(""), st.integers(-3, 200).map(lambda i: f"@{i}"), st.just("@1:0"))


@st.composite
def cli_args(draw, names: list[str]) -> list[str]:
    path = lambda: str(draw(st.sampled_from(names)))  # noqa: E731
    command = draw(
        st.sampled_from(
            ["segment", "ground", "caption", "describe", "entities", "semseg", "chat",
             "track", "score", "eval", "synth", "presets", "nope"]
        )
    )  # fmt: skip
    argv = [command]
    if command in ("segment", "ground", "chat"):
        argv += [path(), draw(odd_text)]
    elif command in ("caption", "describe", "entities", "semseg"):
        argv += [path()]
    elif command == "track":
        argv += [path()] + draw(st.sampled_from([[], [draw(odd_text)]]))
    elif command in ("score", "eval"):
        argv += [draw(st.sampled_from(["refer", "grefer", "gcg", "vos", "png", "foo", ""]))]
        argv += ["--pred", path(), "--gt", "synth:" + path()] if command == "score" else [
            "--dataset", draw(st.sampled_from(["synth:", "refcoco:", "x"])) + path()]  # fmt: skip
    elif command == "synth":
        argv += [path(), "--task", "refer", "--n", draw(st.sampled_from(["0", "-1", "1"]))]
    options = {
        "--box": coords.flatmap(lambda c: at_frame.map(lambda f: c + f)),
        "--point": coords.flatmap(lambda c: at_frame.map(lambda f: c + f)),
        "--mask": st.sampled_from(names).map(str),
        "-o": st.sampled_from(names).map(str),
        "--overlay": st.sampled_from(names).map(str),
        "--masks": st.sampled_from(names).map(str),
        "--classes": odd_text,
        "--threshold": number,
        "--memory-frames": number,
        "--max-frames": number,
        "--device": st.sampled_from(["cpu", "cuda", "mps", "tpu", "cuda:9"]),
        "--model": st.sampled_from(["segmenter=/nope", "x=y", "=", "segmenter=sam2:/nope"]),
        "--video": st.just(None),
        "--grounded": st.just(None),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(options)), max_size=3, unique=True))
    for option in chosen:
        value = draw(options[option])
        argv += [option] if value is None else [option, value]
    if command not in ("presets", "synth", "score", "nope"):
        argv += ["--preset", "shapes"]
    return argv


def test_fuzz_cli_entry_point(files, shapes_pipeline, monkeypatch, capsys):
    monkeypatch.setattr(common, "load", lambda *args, **kwargs: shapes_pipeline)
    monkeypatch.chdir(files["folder"])  # default output folders (eval) land in tmp
    names = sorted(files.values())

    @settings(
        max_examples=CLI_EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(argv=cli_args(names))
    def run(argv: list[str]) -> None:
        COUNTS["cli"] += 1
        try:
            code = cli.main(argv)
        except SystemExit as stop:  # argparse: usage errors exit 2, --help 0
            assert stop.code in (0, 2), argv
            capsys.readouterr()
            return
        err = capsys.readouterr().err
        assert code in (0, 1, 2), (argv, code)
        if code == 2:
            errors = [line for line in err.splitlines() if line.startswith("pixelground: error:")]
            assert len(errors) == 1, (argv, err)
            assert "Traceback" not in err, (argv, err)

    run()
    print(f"\nCLI fuzz: {COUNTS['cli']} cases")


def test_fuzz_python_api(files, shapes_pipeline):
    names = sorted(path for name, path in files.items() if name not in DECODABLE)
    sources = st.one_of(
        st.sampled_from(names),
        st.sampled_from(names).map(str),
        st.binary(max_size=200),
        st.sampled_from(
            [
                np.zeros((0, 4, 3), np.uint8),
                np.zeros((5, 5, 7), np.uint8),
                np.full((4, 4, 2), 3.5),
                np.zeros((2, 2, 2, 3), np.uint8),
            ]
        ),  # fmt: skip
    )
    values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-99, 9999))
    box = st.one_of(st.none(), st.lists(values, min_size=0, max_size=5))

    @settings(
        max_examples=API_EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(
        method=st.sampled_from(["segment", "caption", "describe", "entities", "chat", "ground"]),
        source=sources,
        text=odd_text,
        region=box,
    )
    def run(method: str, source, text: str, region) -> None:
        COUNTS["api"] += 1
        call = getattr(shapes_pipeline, method)
        try:
            if method in ("segment", "chat", "ground"):
                call(source, text)
            elif method == "describe":
                call(source, box=region)
            else:
                call(source)
        except PixelgroundError:
            pass

    run()
    print(f"\nAPI fuzz: {COUNTS['api']} cases")

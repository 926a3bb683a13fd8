"""The one C extension: PNG row filters undone for the evaluation's PNG readers.

Everything else about the package is in pyproject.toml. The extension is optional: without a
C compiler the install goes on and those readers decode with Pillow (slower, same numbers).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pixelground.eval.datasets._png_filters",
            ["pixelground/eval/datasets/_png_filters.c"],
            optional=True,
        )
    ]
)

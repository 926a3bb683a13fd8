"""The one list of colour words.

Everything that asks whether a text names a colour reads this list: model training (a line
that names a colour is never hue-rotated, ``models.data.names_colour``; the colour columns of
the phrase-word heads, ``SegTokenModel.colour_columns``), and the procedural benchmark's
colour names (``synth.scene.COLOURS``) are all in it (a test checks).
"""

from __future__ import annotations

#: Colour names in English, with the words for colour itself ("the shape whose colour is
#: red"): a hue rotation would make a text that uses any of them wrong.
COLOUR_WORDS: frozenset[str] = frozenset(
    "red orange yellow green blue purple violet pink magenta cyan teal turquoise brown "
    "beige gold golden silver grey gray black white navy maroon olive lime indigo "
    "colour color colours colors coloured colored".split()
)

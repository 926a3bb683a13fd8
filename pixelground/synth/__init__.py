"""The procedural grounding benchmark: seeded scenes of shapes and clips with exact ground truth.

Modules: ``scene`` (sampling), ``render`` (pixels and visible masks), ``language`` (referring
expressions and their meaning), ``captions`` (grounded and region captions), ``video`` (clips
and motion expressions), ``splits`` (held-out combinations, per-sample seeds), ``finetune``
(training records), ``writer`` / ``video_writer`` (files on disk). Formats: docs/synth.md.
"""

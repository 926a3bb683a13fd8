"""Where a task's time goes: model forwards, Hugging Face processors, generate's loop, the rest.

:class:`Accounting` instruments the backends a Pipeline has loaded:

- every ``torch.nn.Module`` of every model a backend holds gets a forward pre-hook and an
  (always called) forward hook; only the outermost module call is timed, so nesting is
  never counted twice, and methods that are not ``forward`` (``get_image_embeddings``,
  ``generate``'s encoder call) are covered through the submodules they call;
- processors, tokenizers and image processors (``__call__`` and every public method) are
  timed through a subclass swapped in as the instance's class; only the outermost call
  counts, and a processor call inside a model forward is not counted again;
- ``model.generate`` is wrapped: its time minus the forwards inside it is generate's own
  bookkeeping (logits processors, beam search, stopping criteria, cache updates);
- forward passes pixelground writes itself over a model's modules count as model time
  too: ``MODEL_METHODS`` names them (CLIP's SCLIP dense pass, whose last-layer attention
  is tensor math between hooked modules);
- the rest of the wall time is pixelground's own code (plus numpy, PIL, pycocotools and
  the phrase parser it calls).

Each category is measured in wall seconds and in CPU seconds of the process
(``time.process_time``, all threads).
"""

from __future__ import annotations

import functools
import inspect
import time
from dataclasses import dataclass, field
from typing import Any

CATEGORIES = ("model", "processor", "generate")
#: Backend methods that are model forward passes written in pixelground: (class, method).
MODEL_METHODS = (("ClipScorer", "_dense_tokens"),)


@dataclass
class Split:
    """Seconds per category (wall and process CPU) plus module-call counts."""

    wall: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))
    module_calls: int = 0
    forward_calls: int = 0


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


class Accounting:
    """Instruments backends and accumulates a :class:`Split` until :meth:`reset`."""

    def __init__(self) -> None:
        self.split = Split()
        self._model_depth = 0
        self._processor_depth = 0
        self._model_start = (0.0, 0.0)
        self._hooked: set[int] = set()
        self._handles: list[Any] = []

    def reset(self) -> Split:
        """Return the split so far and start a new one."""
        split, self.split = self.split, Split()
        return split

    def _add(self, category: str, start: tuple[float, float]) -> None:
        wall, cpu = _now()
        self.split.wall[category] += wall - start[0]
        self.split.cpu[category] += cpu - start[1]

    # ------------------------------------------------------------------ models

    def _pre(self, module: Any, args: Any) -> None:
        self.split.module_calls += 1
        if self._model_depth == 0:
            self.split.forward_calls += 1
            self._model_start = _now()
        self._model_depth += 1

    def _post(self, module: Any, args: Any, output: Any) -> None:
        self._model_depth -= 1
        if self._model_depth == 0:
            self._add("model", self._model_start)

    def hook_model(self, model: Any) -> None:
        """Time every module of ``model`` (outermost calls only) and wrap its ``generate``."""
        if id(model) in self._hooked:
            return
        self._hooked.add(id(model))
        for module in model.modules():
            self._handles.append(module.register_forward_pre_hook(self._pre))
            self._handles.append(module.register_forward_hook(self._post, always_call=True))
        if hasattr(model, "generate"):
            model.generate = self._wrap_generate(model.generate)

    def _wrap_forward(self, method: Any) -> Any:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._pre(None, args)
            try:
                return method(*args, **kwargs)
            finally:
                self._post(None, args, None)

        return timed

    def _wrap_generate(self, generate: Any) -> Any:
        @functools.wraps(generate)
        def timed(*args: Any, **kwargs: Any) -> Any:
            model_before = (self.split.wall["model"], self.split.cpu["model"])
            start = _now()
            try:
                return generate(*args, **kwargs)
            finally:
                self._add("generate", start)
                self.split.wall["generate"] -= self.split.wall["model"] - model_before[0]
                self.split.cpu["generate"] -= self.split.cpu["model"] - model_before[1]

        return timed

    # ------------------------------------------------------------------ processors

    def _wrap_method(self, method: Any) -> Any:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._processor_depth or self._model_depth:
                return method(*args, **kwargs)
            self._processor_depth += 1
            start = _now()
            try:
                return method(*args, **kwargs)
            finally:
                self._processor_depth -= 1
                self._add("processor", start)

        return timed

    def time_processor(self, processor: Any) -> None:
        """Time ``processor`` and its tokenizer / image processor (all public methods)."""
        parts = [processor]
        for name in ("tokenizer", "image_processor", "video_processor"):
            part = getattr(processor, name, None)
            if part is not None and part is not processor:
                parts.append(part)
        for part in parts:
            cls = type(part)
            if getattr(cls, "_bench_timed", False):
                continue
            namespace: dict[str, Any] = {"_bench_timed": True}
            for name in dir(cls):
                if name.startswith("_") and name != "__call__":
                    continue
                raw = inspect.getattr_static(cls, name, None)
                if inspect.isfunction(raw):
                    namespace[name] = self._wrap_method(raw)
            part.__class__ = type(cls.__name__, (cls,), namespace)

    # ------------------------------------------------------------------ backends

    def instrument(self, backend: Any) -> None:
        """Instrument the models and processors a backend object holds (one level deep)."""
        import torch

        values = list(vars(backend).values())
        for value in list(values):
            if hasattr(value, "__dataclass_fields__"):  # e.g. vision_common.Loaded
                values += list(vars(value).values())
        for value in values:
            if isinstance(value, torch.nn.Module):
                self.hook_model(value)
            elif _is_processor(value):
                self.time_processor(value)
        for class_name, method in MODEL_METHODS:
            if type(backend).__name__ == class_name and method not in vars(backend):
                setattr(backend, method, self._wrap_forward(getattr(backend, method)))

    def remove(self) -> None:
        """Remove the forward hooks (wrapped methods stay, they cost ~1 us a call)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._hooked.clear()


def _is_processor(value: Any) -> bool:
    module = type(value).__module__
    return module.startswith("transformers.") and any(
        hasattr(value, name) for name in ("image_processor", "tokenizer", "model_input_names")
    )


def hook_overhead(calls: int = 20000) -> float:
    """Seconds one hooked module call costs more than an unhooked one (pre + post hook)."""
    import torch

    accounting = Accounting()
    plain, hooked = torch.nn.Identity(), torch.nn.Identity()
    accounting.hook_model(hooked)
    x = torch.zeros(1)
    times = []
    for module in (plain, hooked):
        start = time.perf_counter()
        for _ in range(calls):
            module(x)
        times.append(time.perf_counter() - start)
    accounting.remove()
    return max(times[1] - times[0], 0.0) / calls

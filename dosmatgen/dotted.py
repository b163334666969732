"""Callables named by ``"package.module:attribute"`` strings (stage loaders in configs, backend providers)."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from dosmatgen.errors import InvalidRecordError


def resolve_callable(spec: str) -> Callable[..., Any]:
    """Import ``"package.module:attribute"``; InvalidRecordError naming the spec if it cannot."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise InvalidRecordError(f"callable spec {spec!r} must look like 'package.module:function'")
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidRecordError(f"cannot import {module_name!r} for {spec!r}: {exc}") from exc
    try:
        fn = getattr(module, attr)
    except AttributeError:
        raise InvalidRecordError(f"module {module_name!r} has no attribute {attr!r} (spec {spec!r})") from None
    if not callable(fn):
        raise InvalidRecordError(f"{spec!r} is not callable")
    return fn

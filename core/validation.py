"""One-line messages for pydantic validation errors outside pod files (API bodies)."""

from __future__ import annotations

from pydantic import ValidationError


def one_line(error: ValidationError) -> str:
    from .specload import _describe  # the pod file's wording, shared

    return _describe(error, {})

"""Warnings that every process of the project silences: the CLI, the ``lic warm`` fork server and the
benchmark's worker processes all call :func:`ignore_known_warnings` first."""

from __future__ import annotations

import warnings


def ignore_known_warnings() -> None:
    """CompressAI 1.2.8 decorates functions with the deprecated ``torch.jit.script``: one FutureWarning
    per import, on every command; nothing a user can act on."""
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)

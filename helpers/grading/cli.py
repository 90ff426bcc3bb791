"""Instructor commands (filled in with the grading workflow)."""

from __future__ import annotations


def add_grading_commands(commands) -> None:
    return None

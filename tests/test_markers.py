"""The slow marks of tests/conftest.py name tests and fixtures that exist: a renamed test would
otherwise silently fall back into the `pytest -m "not slow"` loop."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from conftest import SLOW_FIXTURES, SLOW_TESTS

TESTS = Path(__file__).parent


@cache
def functions(path: Path) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


@pytest.mark.parametrize("entry", sorted(SLOW_TESTS))
def test_every_test_named_slow_exists(entry: str) -> None:
    file, name = entry.split("::")
    assert (TESTS / file).is_file(), entry
    assert name in functions(TESTS / file), entry


def test_every_slow_fixture_exists() -> None:
    defined = set().union(*(functions(p) for p in TESTS.glob("*.py")))
    assert SLOW_FIXTURES <= defined


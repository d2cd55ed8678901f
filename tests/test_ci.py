"""CI (.ci/run) renders the report in a real browser: it exports CI=true and installs Chromium
wherever apt-get can, and under CI=true the browser test fails instead of skipping without one."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import test_report_browser

REPO = Path(__file__).resolve().parents[1]


def test_ci_exports_ci_true_and_installs_chromium_unasked() -> None:
    """Planted faults: the install behind an opt-in variable (the old CI_BROWSER=1), or no CI=true
    (the browser test would skip in CI)."""
    script = (REPO / ".ci/run").read_text()
    lines = [ln.strip() for ln in script.splitlines() if not ln.strip().startswith("#")]
    assert "export CI=true" in lines
    assert "CI_BROWSER" not in script
    assert any("apt-get install" in ln and "chromium" in ln for ln in lines)
    # CI=true is exported before the tests run
    assert lines.index("export CI=true") < lines.index("pytest")
    bash = shutil.which("bash")
    if bash:
        assert subprocess.run([bash, "-n", str(REPO / ".ci/run")], check=False).returncode == 0


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception),
                                             ("", pytest.skip.Exception)])
def test_without_chromium_the_browser_test_fails_in_ci_and_skips_elsewhere(
        monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]) -> None:
    """Planted fault: the fixture skipping whatever CI says (the browser test always skipped)."""
    monkeypatch.setattr(test_report_browser.shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", ci)
    try:  # a skip raised where a failure is due must fail this test, not skip it
        test_report_browser.find_browser()
    except BaseException as raised:  # noqa: BLE001 - pytest's outcomes are BaseExceptions
        assert type(raised) is outcome and "Chromium" in str(raised), repr(raised)
    else:
        raise AssertionError("no Chromium, yet neither a failure nor a skip")


def test_with_chromium_the_browser_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_report_browser.shutil, "which",
                        lambda name: "/usr/bin/chromium" if name == "chromium" else None)
    monkeypatch.setenv("CI", "true")
    assert test_report_browser.find_browser() == "/usr/bin/chromium"


def test_pyproject_readme_and_the_interpreter_agree_on_the_python_version() -> None:
    """Planted fault: pyproject saying >=3.10 while the tests need tomllib (3.11) and the README
    says 3.11 (the issue's mismatch)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["tool"]["ruff"]["target-version"] == "py311"
    readme = (REPO / "README.md").read_text()
    assert re.findall(r"Python (3\.\d+)", readme) == ["3.11"]
    assert "Python 3.11 or newer" in readme
    assert sys.version_info >= (3, 11)

"""Where a synthesis method's name appears, by the places a method may touch: its own modules, its
config section, its registry line, tests, docs and what `dvc repro` records. Anything else is
printed line by line: a mention to judge, or the interface leaking (a shared module that has to
know the method). Exit status 1 when anything else mentions a method.

    python bench/method_footprint.py             # every method of the registry
    python bench/method_footprint.py NAME [NAME ...]

Reads the files git tracks in this checkout (a case-insensitive substring match: `FooConfig`
mentions a method `foo`). The names of dcgan double as its `arch` and the project's
history, so its footprint is wide by nature; it is the newer methods this is for.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's registry, not an installed copy's
from pipeline.registries import METHODS

Rule = Callable[[PurePosixPath, str], bool]
PLACES: dict[str, Rule] = {
    "own modules": lambda p, m: p.parts[0] == "pipeline" and p.stem == m,
    "config section": lambda p, m: str(p) in ("pipeline/config.py", "params.yaml", "dvc.yaml"),
    "registry": lambda p, m: str(p) == "pipeline/registries.py",
    "tests": lambda p, m: p.parts[0] == "tests",
    "docs": lambda p, m: p.suffix == ".md",
    "dvc repro's record": lambda p, m: str(p) == "dvc.lock" or p.parts[0] in ("metrics", "plots"),
}


def mentions(method: str, files: list[PurePosixPath]) -> dict[PurePosixPath, list[int]]:
    """file -> numbers of the lines that mention `method` (files that do)."""
    found = {}
    for path in files:
        try:
            lines = (ROOT / path).read_text(encoding="utf-8").lower().splitlines()
        except (UnicodeDecodeError, FileNotFoundError):  # binary, or deleted but still tracked
            continue
        hits = [i + 1 for i, line in enumerate(lines) if method in line]
        if hits:
            found[path] = hits
    return found


def report(method: str, found: dict[PurePosixPath, list[int]]) -> bool:
    """Print the footprint of `method` (each file in the first place it fits, with the number of
    its lines that mention the method); True when a file outside PLACES mentions it."""
    print(f"{method}: {len(found)} files")
    place_of = {p: next((name for name, rule in PLACES.items() if rule(p, method)), "elsewhere")
                for p in found}
    for place in [*PLACES, "elsewhere"]:
        cells = [f"{p} ({len(found[p])})" for p in found if place_of[p] == place]
        print(f"  {place:<20} {', '.join(cells) or '-'}")
    elsewhere = [p for p in found if place_of[p] == "elsewhere"]
    for path in elsewhere:
        text = (ROOT / path).read_text(encoding="utf-8").splitlines()
        for i in found[path]:
            print(f"    {path}:{i}: {text[i - 1].strip()[:100]}")
    return bool(elsewhere)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="*", default=list(METHODS))
    args = parser.parse_args()
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.splitlines()
    files = [PurePosixPath(f) for f in tracked]
    leaks = [report(m, mentions(m.lower(), files)) for m in args.methods]
    sys.exit(1 if any(leaks) else 0)


if __name__ == "__main__":
    main()

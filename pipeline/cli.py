"""What every stage script shares: argument parsing and turning user errors into one clean line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from pipeline.errors import PipelineError


def run_stage(
    name: str, main: Callable[[argparse.Namespace], None], paths: dict[str, str]
) -> None:
    """Parse `--<path> VALUE` arguments (all required: dvc.yaml is where paths are written), run
    `main`, and print a PipelineError as `<stage>: error: ...` with exit code 1, no traceback."""
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}", description=f"DVC stage {name}")
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    for flag, help_text in paths.items():
        parser.add_argument(f"--{flag}", required=True, help=help_text)
    args = parser.parse_args()
    try:
        main(args)
    except PipelineError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        sys.exit(1)

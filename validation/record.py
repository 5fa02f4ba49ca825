"""A committed record of measurements: written afresh, or checked against what is committed."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def write_or_check(path: Path, fresh: dict, module: str, check: bool) -> int:
    """Write `fresh` to `path`, or (`check`) compare it with the committed file: exit status
    1, naming the command that writes it again (`python -m <module>`), if they differ."""
    what = module.rsplit(".", 1)[-1]
    if check:
        if json.loads(path.read_text()) != fresh:
            print(f"{what}: fresh steps differ from {path.name}; run python -m {module}", file=sys.stderr)
            return 1
        print(f"{what}: {len(fresh['steps'])} steps match {path.name}")
        return 0
    path.write_text(json.dumps(fresh, indent=1) + "\n")
    print(f"{what}: wrote {len(fresh['steps'])} steps to {path.name}")
    return 0

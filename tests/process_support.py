"""Running a snippet of Python in a fresh interpreter, for tests of what holds across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def python_output(code: str, *args: str, hash_seed: int) -> str:
    """The stripped stdout of ``python -c code args`` with this checkout importable and
    ``PYTHONHASHSEED`` set, so that anything hash-dependent would show."""
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()

"""STS start-up: ``create_app`` on an empty database (first start) and on an initialised one
(a restart, as every test and every worker does), min/median/max of 3 runs each.

``--compare DIR`` runs the same measurement, in the same run, on another checkout (for example
the main branch before a change) in a subprocess and prints this checkout ÷ that one.

    .venv/bin/python bench/startup.py --compare /path/to/other/checkout
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 3


def _measure() -> dict[str, list[float]]:
    from sts import create_app
    from tests.sts.conftest import make_config

    found: dict[str, list[float]] = {"first start": [], "restart": []}
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder)
            config = make_config(path, f"sqlite:///{path / 'sts.db'}")
            for label in ("first start", "restart"):
                started = time.perf_counter()
                app = create_app(config)
                found[label].append(time.perf_counter() - started)
                app.extensions["jobsts"].close()
    return found


def _summary(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--compare", type=Path, help="another checkout, measured in a subprocess")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:  # in the subprocess: time whichever checkout is first on sys.path
        print(json.dumps(_measure()))
        return
    sys.path.insert(0, str(ROOT))
    here = _measure()
    print(f"this checkout ({ROOT}): min / median / max of {RUNS}")
    for label, values in here.items():
        print(f"  {label:12} {_summary(values)}")
    if args.compare is None:
        return
    other_root = args.compare.resolve()
    env = {**os.environ, "PYTHONPATH": str(other_root)}
    script = f"import sys; sys.argv=['startup', '--json']; sys.path.insert(0, {str(other_root)!r}); " + (
        "import runpy; runpy.run_path(" + repr(str(Path(__file__).resolve())) + ", run_name='__main__')"
    )
    # The other checkout's code is imported first (cwd and PYTHONPATH), this script only times it.
    output = subprocess.run(
        [sys.executable, "-c", script], cwd=other_root, env=env, capture_output=True, text=True, check=True
    ).stdout
    there = json.loads(output.strip().splitlines()[-1])
    print(f"other checkout ({other_root}):")
    for label, values in there.items():
        print(f"  {label:12} {_summary(values)}")
    for label in here:
        ratio = statistics.median(here[label]) / statistics.median(there[label])
        print(f"  {label:12} this ÷ other (medians): {ratio:.2f}x")


if __name__ == "__main__":
    main()

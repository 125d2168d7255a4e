"""Generated mutation testing with mutmut over the pure domain modules, and the kill rate per module.

    python -m scripts.mutation            # make mutants: mutmut run, then the table
    python -m scripts.mutation --report   # only the table, from the last run's results

mutmut's configuration is `[tool.mutmut]` in pyproject.toml: the modules it mutates and the fast
tests it runs (each mutant only against the tests that reach the mutated function). It works in
`mutants/` (gitignored). A mutant is killed when a test fails or times out; "no tests" means no
selected test reaches the function. Not part of CI: about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = Path(sys.executable).parent / "mutmut"
KILLED = {"killed", "timeout"}


def results() -> dict[str, Counter[str]]:
    """Return module -> count of mutants per status, from `mutmut results --all true`."""
    listing = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for line in listing.splitlines():
        name, _, status = line.strip().partition(": ")
        if "__mutmut_" in name:
            # chalicelib.domain.ids.x_photo_id__mutmut_1: the module, then the mangled function
            by_module[name[: name.index("__mutmut_")].rsplit(".", 1)[0]][status] += 1
    return dict(by_module)


def report(by_module: dict[str, Counter[str]]) -> int:
    """Print one line per module; return the number of survivors (and untested mutants)."""
    left = 0
    for module, counts in sorted(by_module.items()):
        total = sum(counts.values())
        killed = sum(counts[status] for status in KILLED)
        others = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()) if status not in KILLED)
        print(f"{module:32} {killed:4}/{total:<4} killed {100 * killed / total:5.1f} %  {others}")
        left += total - killed
    return left


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="store_true", help="only print the last run's kill rates")
    args = parser.parse_args()
    if not args.report:
        # mutmut keeps the results of functions whose code did not change, even when the tests
        # did: start from a fresh copy so the rates are those of the tests as they are now.
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        subprocess.run([str(MUTMUT), "run", "--max-children", "2"], cwd=ROOT, check=True)
    return 1 if report(results()) else 0


if __name__ == "__main__":
    sys.exit(main())

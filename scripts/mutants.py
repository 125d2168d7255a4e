"""Put known one-line bugs into a copy of the code, one at a time, and show a test catches each.

    python -m scripts.mutants              # every mutant; exit 1 if any survives (make mutants-listed)
    python -m scripts.mutants -k storage   # only the mutants whose name contains "storage"

Each mutant is a one-line edit a contributor could plausibly make: issue 14's eight, then one
per path its tests added. The work tree is copied to a temporary folder (tracked files only), the edit is
applied there, and the tests named for it run with pytest; the mutant is killed when they fail.
The work tree itself is never modified. Not part of CI: it runs the named tests once per mutant.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    before: str
    after: str
    tests: tuple[str, ...]
    occurrence: int = 1  # which occurrence of `before` to replace (1 = the first)


MUTANTS = (
    Mutant(
        "bibs lose their leading zeros",
        "chalicelib/domain/bibs.py",
        "    return candidate.upper() or None",
        '    return candidate.upper().lstrip("0") or None',
        ("tests/test_bibs.py",),
    ),
    Mutant(
        "ThumbHash stored empty",
        "chalicelib/services/pipeline.py",
        "        thumbhash=image.thumbhash,",
        '        thumbhash="",',
        ("tests/test_pipeline.py::test_the_photos_thumbhash_decodes_to_a_preview_of_its_shape_and_colour",),
    ),
    Mutant(
        "IndexFaces throttling retry MaxAttempts 10 -> 0",
        "statemachine.json",
        '"MaxAttempts": 10,',
        '"MaxAttempts": 0,',
        (
            "tests/test_workflow.py::test_a_step_failing_max_attempts_times_is_called_once_more_and_succeeds"
            "[IndexFaces-ThrottlingException]",
        ),
        occurrence=2,  # DetectText's retry comes first
    ),
    Mutant(
        "photographer partition without the org",
        "chalicelib/adapters/table.py",
        '    return f"{_event_pk(org_id, event_id)}#PG#{handle}"',
        '    return f"EVT#{event_id}#PG#{handle}"',
        ("tests/test_api.py::test_two_orgs_sharing_an_event_id_never_see_each_others_photos_on_any_route",),
    ),
    Mutant(
        "cursor listing check disabled",
        "chalicelib/domain/cursors.py",
        '    if data.get("s") != scope:',
        '    if False and data.get("s") != scope:',
        ("tests/test_api.py::test_cursor_from_another_listing_is_400",),
    ),
    Mutant(
        "selfie matches sorted worst first",
        "chalicelib/services/search.py",
        "key=lambda pair: (-pair[1], pair[0])",
        "key=lambda pair: (pair[1], pair[0])",
        ("tests/test_api.py::test_selfie_matches_are_ranked_by_each_photos_best_similarity",),
    ),
    Mutant(
        "presigned URL reused for its whole lifetime, not half",
        "chalicelib/adapters/storage.py",
        "max(1, expires_in // 2)",
        "max(1, expires_in)",
        ("tests/test_storage.py::test_a_reused_presigned_url_always_has_at_least_half_its_lifetime_left",),
    ),
    Mutant(
        "jitter removed from the batch-write backoff",
        "chalicelib/adapters/table.py",
        "self._sleep(random.uniform(0, min(self._max_delay, self._base_delay * 2**attempt)))",
        "self._sleep(min(self._max_delay, self._base_delay * 2**attempt))",
        ("tests/test_table.py::test_batch_write_backoff_is_jittered_so_retries_spread_out",),
    ),
    # Found or covered since (issue 14's other untested paths):
    Mutant(
        "S3 SlowDown not mapped to throttling",
        "chalicelib/adapters/storage.py",
        '_THROTTLED = {"SlowDown", ',
        "_THROTTLED = {",
        ("tests/test_storage.py::test_s3_slow_down_is_throttling",),
    ),
    Mutant(
        "UnprocessedKeys dropped instead of asked for again",
        "chalicelib/adapters/table.py",
        '                pending = response.get("UnprocessedKeys") or {}',
        "                pending = {}",
        ("tests/test_table.py::test_unprocessed_keys_are_asked_for_again_until_every_photo_is_read",),
    ),
    Mutant(
        "a racing save's bib entries not reconciled with the record",
        "chalicelib/adapters/table.py",
        "        current = self._get(key)\n        if current is None:",
        "        current = None\n        if current is None:",
        ("tests/test_pipeline.py::test_two_runs_of_one_photo_racing_in_fanout_leave_one_consistent_photo",),
    ),
)


def mutate(text: str, mutant: Mutant) -> str:
    """Return `text` with the mutant's occurrence of `before` replaced; raise if it is not there."""
    start = -1
    for _ in range(mutant.occurrence):
        start = text.find(mutant.before, start + 1)
        if start < 0:
            raise LookupError(f"{mutant.name}: {mutant.before!r} not found in {mutant.path} (code changed?)")
    return text[:start] + mutant.after + text[start + len(mutant.before) :]


def copy_tree(destination: Path) -> None:
    """Copy the tracked files of the work tree (as they are on disk) into `destination`."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run_tests(tree: Path, tests: tuple[str, ...]) -> tuple[bool, str]:
    """Run `tests` in `tree`; return (passed, the last line pytest printed)."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return done.returncode == 0, lines[-1] if lines else done.stderr.strip()[-200:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-k", default="", help="only the mutants whose name contains this text")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if args.k.lower() in m.name.lower()]
    survivors = 0
    with tempfile.TemporaryDirectory(prefix="snaprace-mutants-") as folder:
        tree = Path(folder)
        copy_tree(tree)
        # A mutant only counts as killed if its tests pass without it.
        baseline = tuple(dict.fromkeys(test for mutant in chosen for test in mutant.tests))
        passed, summary = run_tests(tree, baseline)
        if not passed:
            print(f"the mutants' tests fail on the unmutated code: {summary}")
            return 2
        for mutant in chosen:
            target = tree / mutant.path
            original = target.read_text()
            target.write_text(mutate(original, mutant))
            started = time.monotonic()
            try:
                passed, summary = run_tests(tree, mutant.tests)
            finally:
                target.write_text(original)
            verdict = "SURVIVED" if passed else "killed"
            survivors += passed
            print(f"{verdict:8}  {mutant.name}  ({time.monotonic() - started:.0f} s: {summary})")
    print(f"{len(chosen) - survivors} of {len(chosen)} mutants killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())

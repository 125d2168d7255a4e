"""Start lists, near-miss bib correction and "did you mean" (pure).

A start list is CSV `bib,name[,category]`, one runner a line (a header line naming `bib` is
skipped). Against it, a bib read is kept when listed, corrected when exactly one listed bib is one
edit away (a digit misread, or one missing or extra: `1026` for `10264`, `0159` for `10159`), and
otherwise set aside as unlisted. Ambiguity is never guessed: two listed bibs within one edit of a
read leave the read unlisted, and so does a read of fewer than 3 characters.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chalicelib.domain.bibs import BibRules, normalise_bib
from chalicelib.domain.errors import InvalidStartList

MAX_RUNNERS = 5000  # one DynamoDB item (400 KB) holds a start list this long with room to spare
MAX_NAME = 100
SUGGESTIONS = 3
# A read shorter than this is never corrected: one edit of a 1-2 character fragment ("13") reaches
# too many bibs ("163", "113", "138") for a unique match to mean much.
MIN_CORRECTABLE = 3


@dataclass(frozen=True)
class Runner:
    bib: str
    name: str
    category: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"bib": self.bib, "name": self.name, "category": self.category}


@dataclass(frozen=True)
class Checked:
    """What a start list made of a photo's reads."""

    bibs: tuple[str, ...]
    unlisted: tuple[str, ...]
    corrections: tuple[dict[str, str], ...]  # {"read": raw read, "bib": listed bib}


def parse_start_list(text: str, rules: BibRules) -> list[Runner]:
    """Return the runners of a CSV start list, bibs normalised under `rules`; raise InvalidStartList."""
    runners: dict[str, Runner] = {}
    rows = csv.reader(io.StringIO(text))
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if number == 1 and cells[0].lower() == "bib":
            continue
        if len(cells) not in (2, 3) or not cells[1]:
            raise InvalidStartList(f"line {number}: expected bib,name[,category], got {len(cells)} fields")
        bib = normalise_bib(cells[0], rules)
        if bib is None:
            raise InvalidStartList(f"line {number}: {cells[0]!r} is not a bib under this event's rules")
        if bib in runners:
            raise InvalidStartList(f"line {number}: bib {bib} is listed twice")
        if len(cells[1]) > MAX_NAME:
            raise InvalidStartList(f"line {number}: the name is over {MAX_NAME} characters")
        category = cells[2] if len(cells) == 3 and cells[2] else None
        runners[bib] = Runner(bib, cells[1], category)
        if len(runners) > MAX_RUNNERS:
            raise InvalidStartList(f"a start list holds at most {MAX_RUNNERS} runners")
    if not runners:
        raise InvalidStartList("the start list has no runners")
    return list(runners.values())


def one_edit(a: str, b: str) -> bool:
    """Return True if `a` and `b` differ by exactly one substitution, insertion or deletion."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def check_reads(reads: Iterable[str], listed: Mapping[str, object] | set[str]) -> Checked:
    """Keep listed reads, correct unique near misses, set the rest aside (first-seen order)."""
    bibs: dict[str, None] = {}
    unlisted: dict[str, None] = {}
    corrections: list[dict[str, str]] = []
    for read in reads:
        if read in listed:
            bibs.setdefault(read, None)
            continue
        near = [bib for bib in listed if one_edit(read, bib)] if len(read) >= MIN_CORRECTABLE else []
        if len(near) == 1:
            bibs.setdefault(near[0], None)
            corrections.append({"read": read, "bib": near[0]})
        else:
            unlisted.setdefault(read, None)
    return Checked(tuple(bibs), tuple(unlisted), tuple(corrections))


def suggestions(bib: str, counts: Mapping[str, int], limit: int = SUGGESTIONS) -> list[dict[str, object]]:
    """Return up to `limit` bibs one edit from `bib` that have photos, most photos first."""
    near = [(other, count) for other, count in counts.items() if count > 0 and one_edit(bib, other)]
    near.sort(key=lambda pair: (-pair[1], pair[0]))
    return [{"bib": other, "photo_count": count} for other, count in near[:limit]]


def fold(text: str) -> str:
    """Return `text` lower-cased without accents, for name matching (`Zoë` matches `zoe`)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def find_runners(query: str, runners: Iterable[Runner], limit: int = 20) -> list[Runner]:
    """Return the runners whose name has a word starting with each word of `query`, by name."""
    words = fold(query).split()
    if not words:
        return []
    found = []
    for runner in runners:
        names = fold(runner.name).split()
        if all(any(name.startswith(word) for name in names) for word in words):
            found.append(runner)
    found.sort(key=lambda runner: (fold(runner.name), runner.bib))
    return found[:limit]

"""The subjects a bronze batch affects, and the silver rows that can become theirs.

A base library's views are computed per subject, so the views of a few subjects need only
the silver rows that can end up keyed by them. Reading silver through those keys before the
views (their joins, windows and groupings) makes an incremental batch cost about what it
changes. Each library says which rows those are (``rows_for`` in ``jobs.population`` and
``jobs.legal_person``); ``jobs.build`` still restricts every view to the affected subjects
afterwards, so a row read in excess changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: Up to this many keys are broadcast to every task, so silver is filtered without being
#: shuffled. An 18-character ID takes about 60 bytes in a broadcast relation: 60 MB at most.
#: A 1 % change of a 10M province affects about 320,000 persons (whole households), which
#: a limit of 200,000 sent down the path that reads and shuffles every silver row.
BROADCAST_KEYS = 1_000_000


@dataclass(frozen=True)
class Affected:
    """The distinct keys of the subjects a batch affects, in column ``key``, and their number.

    ``incremental``: the library holds subjects already (false for a full build's first
    batch, which affects every subject and gains nothing from filtering by their keys).
    """

    keys: DataFrame
    key: str
    count: int
    incremental: bool = True

    @property
    def few(self) -> bool:
        """Few enough to broadcast, in an incremental batch."""
        return self.incremental and self.count <= BROADCAST_KEYS

    def hinted(self, frame: DataFrame) -> DataFrame:
        """``frame`` (no bigger than the keys), broadcast when the keys are few."""
        from pyspark.sql import functions as F

        return F.broadcast(frame) if self.few else frame

    def named(self, column: str) -> DataFrame:
        """The keys as column ``column``."""
        from pyspark.sql import functions as F

        return self.hinted(self.keys.select(F.col(self.key).alias(column)))


def rows_naming(frame: DataFrame, columns: list[str], affected: Affected) -> DataFrame:
    """The rows of ``frame`` with an affected subject in any of ``columns``, each row once."""
    out = None
    for number, column in enumerate(columns):
        part = frame.join(affected.named(column), column, "left_semi")
        for earlier in columns[:number]:
            # Taken already by an earlier column (a marriage of two affected persons).
            part = part.join(affected.named(earlier), earlier, "left_anti")
        out = part if out is None else out.unionByName(part)
    if out is None:
        raise ValueError("rows_naming needs at least one column")
    return out

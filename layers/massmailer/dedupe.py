"""Exact de-duplication of an audience in a fixed memory budget.

An address's identity digest (``addresses.identity_digest``: 64 bits of BLAKE2b of its
case-insensitive identity) is what its message id is made of, so two rows are "the same recipient"
exactly when their digests are equal. :class:`DigestSet` keeps those 64-bit digests in one
preallocated open-addressing table (linear probing) — 8 bytes a slot instead of the ~70 bytes of
a Python ``set`` of ints — held in an anonymous ``mmap``: the kernel hands out zeroed pages on first
touch, so a small audience costs only the pages it touches, and no audience costs more than the
budget.

An audience with more distinct addresses than one table holds is split in *passes*
(:func:`plan_passes`): pass ``k`` of ``K`` takes only the addresses whose digest falls in partition
``k`` (:func:`partition`), so each pass de-duplicates its share exactly and the passes together cover
every address once.
"""

from __future__ import annotations

import logging
import math
import mmap

logger = logging.getLogger(__name__)

PLAN_LOAD = 0.5  # passes are planned so that a table is at most half full (short probe sequences)
MAX_LOAD = 0.8  # beyond this (the plan was wrong: rows much shorter than sampled) the table grows
MAX_PASSES = 999


def partition(digest: int, passes: int) -> int:
    """The pass that owns an address, from the digest's high 32 bits (the table uses all 64)."""
    return (digest >> 32) % passes


def plan_passes(estimated_rows: int, budget_bytes: int) -> int:
    """How many passes keep every pass's table within ``budget_bytes`` at ``PLAN_LOAD``."""
    per_pass = max(int(slots_for(budget_bytes) * PLAN_LOAD), 1)
    return max(1, math.ceil(estimated_rows / per_pass))


def slots_for(budget_bytes: int) -> int:
    return max(budget_bytes // 8, 64)


class DigestSet:
    """A set of 64-bit digests in a fixed table of ``budget_bytes // 8`` slots (0 marks a free slot;
    the digest 0 itself is kept in a flag).

    The hot loop of the splitter inlines :meth:`add` (reading ``table``/``slots``) for speed; it
    must call :meth:`grow` when ``count`` reaches ``limit``, as :meth:`add` does.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._allocate(slots_for(budget_bytes))
        self.count = 0
        self.has_zero = False

    def _allocate(self, slots: int) -> None:
        self.slots = slots
        self.limit = int(slots * MAX_LOAD)
        self._memory = mmap.mmap(-1, slots * 8)
        self.table = memoryview(self._memory).cast("Q")

    def add(self, digest: int) -> bool:
        """Insert ``digest``; True when it was not there yet."""
        if not digest:
            new, self.has_zero = not self.has_zero, True
            return new
        table, slots = self.table, self.slots
        i = digest % slots
        while (v := table[i]) != 0:
            if v == digest:
                return False
            i = i + 1 if i + 1 < slots else 0
        table[i] = digest
        self.count += 1
        if self.count >= self.limit:
            self.grow()
        return True

    def __contains__(self, digest: int) -> bool:
        if not digest:
            return self.has_zero
        table, slots = self.table, self.slots
        i = digest % slots
        while (v := table[i]) != 0:
            if v == digest:
                return True
            i = i + 1 if i + 1 < slots else 0
        return False

    def __len__(self) -> int:
        return self.count + self.has_zero

    def grow(self) -> None:
        """Double the table (over the budget: exactness first). Only when passes were under-planned."""
        old_table, old_memory = self.table, self._memory
        logger.warning(
            "de-dupe table over its planned load: growing beyond the budget",
            extra={"budget_bytes": self.budget_bytes, "slots": self.slots * 2, "count": self.count},
        )
        self._allocate(self.slots * 2)
        table, slots = self.table, self.slots
        for digest in old_table:
            if digest:
                i = digest % slots
                while table[i]:
                    i = i + 1 if i + 1 < slots else 0
                table[i] = digest
        old_table.release()
        old_memory.close()

    def close(self) -> None:
        """Give the memory back now (rather than when the object is collected)."""
        self.table.release()
        self._memory.close()

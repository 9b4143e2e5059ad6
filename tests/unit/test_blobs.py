"""Reading audiences in blocks of whole lines: any read size gives the same lines and exact offsets."""

from __future__ import annotations

import random

import pytest

from massmailer.blobs import OVERSIZED_LINE, line_blocks
from massmailer.memory import InMemoryBlobs


def _reads(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at = [], 0
    for size in sizes:
        if at >= len(data):
            break
        out.append(data[at : at + size])
        at += size
    if at < len(data):
        out.append(data[at:])
    return out


@pytest.mark.parametrize("seed", range(20))
def test_blocks_hold_whole_lines_and_end_where_they_say_whatever_the_reads(seed: int) -> None:
    rng = random.Random(seed)
    lines = [bytes(rng.choice(b"abc,\r") for _ in range(rng.randrange(0, 30))) for _ in range(200)]
    data = b"\n".join(lines) + (b"\n" if seed % 2 else b"")
    start = rng.randrange(0, len(data) // 2)
    start = data.find(b"\n", start) + 1  # a checkpoint is always at a line start
    reads = _reads(data[start:], [rng.randrange(1, 60) for _ in range(2000)])

    blocks = list(line_blocks(reads, start))

    previous = start
    for block, end in blocks:
        assert data[previous:end] == block
        assert block.endswith(b"\n") or end == len(data)
        previous = end
    assert previous == len(data)


def test_a_line_longer_than_the_limit_is_skipped_with_its_offset() -> None:
    data = b"short\n" + b"x" * 100 + b"\nnext\n" + b"y" * 50
    blocks = list(line_blocks(_reads(data, [7] * 100), 0, max_line=20))
    assert blocks == [
        (b"short\n", 6),
        (OVERSIZED_LINE, 107),
        (b"next\n", 112),
        (OVERSIZED_LINE, len(data)),
    ]
    assert blocks[1][0] is OVERSIZED_LINE


def test_in_memory_blobs_read_from_an_offset_and_report_size_and_etag() -> None:
    blobs = InMemoryBlobs(read_size=4)
    blobs.put("a.csv", b"email\na@x.io\nb@x.io\n")
    head = blobs.head("a.csv", 8)
    assert head is not None and (head.data, head.size) == (b"email\na@", 20) and head.etag
    assert [b for b, _ in blobs.blocks("a.csv", 6, if_match=head.etag)] == [b"a@x.io\n", b"b@x.io\n"]
    assert blobs.head("missing.csv", 8) is None

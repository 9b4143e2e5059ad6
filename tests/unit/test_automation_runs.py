"""A run's state machine is a table: each move, the states it starts from and where it goes."""

from __future__ import annotations

import pytest

from massmailer.store.automations import FINAL_RUN, RUN_MOVES, RunMove, RunStatus

W, R = RunStatus.WAITING, RunStatus.RUNNING


@pytest.mark.parametrize(
    ("move", "sources", "target"),
    [
        (RunMove.START, {W}, R),
        (RunMove.NOTE, {W, R}, None),
        (RunMove.SKIP_OVERLAP, {W}, RunStatus.SKIPPED_OVERLAP),
        (RunMove.FAIL, {W, R}, RunStatus.FAIL),
        (RunMove.FINISH, {R}, RunStatus.DONE),
        (RunMove.FINISH_FAILED, {R}, RunStatus.FAIL),
    ],
)
def test_each_move_starts_only_from_its_sources(
    move: RunMove, sources: set[RunStatus], target: RunStatus | None
) -> None:
    assert RUN_MOVES[move] == (frozenset(sources), target)


def test_no_move_leaves_a_final_state_and_every_move_is_in_the_table() -> None:
    assert set(RUN_MOVES) == set(RunMove)
    for sources, _ in RUN_MOVES.values():
        assert not sources & FINAL_RUN

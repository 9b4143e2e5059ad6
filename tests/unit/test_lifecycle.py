"""The campaign state machine as a table: every (state, action) pair is a move or a refusal naming
both states; and each actor may make only its own moves."""

from __future__ import annotations

import pytest

from massmailer.lifecycle import FINAL, MOVES, Action, Actor, TransitionNotAllowed, check, move, resume_target
from massmailer.models import CampaignStatus as S

# The whole table, written out independently of MOVES: state → action → target (None: refused).
R = "resume"  # back to running: SPLITTING or SENDING, by split_done
EXPECTED: dict[S, dict[Action, S | str | None]] = {
    S.SCHEDULED: {Action.START_SPLIT: S.SPLITTING, Action.CANCEL: S.CANCELLED, Action.FAIL: S.FAILED},
    S.SPLITTING: {
        Action.FINISH_SPLIT: S.SENDING,
        Action.PAUSE: S.PAUSED,
        Action.AUTO_PAUSE: S.PAUSED,
        Action.CANCEL: S.CANCELLED,
        Action.FAIL: S.FAILED,
    },
    S.SENDING: {Action.PAUSE: S.PAUSED, Action.AUTO_PAUSE: S.PAUSED, Action.CANCEL: S.CANCELLED, Action.FAIL: S.FAILED},
    S.PAUSED: {Action.RESUME: R, Action.CANCEL: S.CANCELLED, Action.FAIL: S.FAILED},
    S.COMPLETED: {},
    S.CANCELLED: {},
    S.FAILED: {},
}


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("action", list(Action))
def test_every_state_and_action_is_a_move_or_a_409_naming_from_and_to(state: S, action: Action) -> None:
    actor = next(iter(MOVES[action].actors))
    expected = EXPECTED[state].get(action)
    if expected is None:
        with pytest.raises(TransitionNotAllowed) as refused:
            check(action, actor, state)
        target = MOVES[action].target
        assert str(refused.value).endswith(
            f"from {state.value} to {target.value if target else 'SPLITTING/SENDING'} is not allowed"
        )
        assert refused.value.current == state
    else:
        found = check(action, actor, state)
        target = found.target or R
        assert target == expected


def test_final_states_have_no_way_out_and_resume_goes_where_the_split_stands() -> None:
    assert {S.COMPLETED, S.CANCELLED, S.FAILED} == FINAL
    assert all(not (m.sources & FINAL) for m in MOVES.values())
    assert (resume_target(split_done=False), resume_target(split_done=True)) == (S.SPLITTING, S.SENDING)


@pytest.mark.parametrize(
    ("action", "actor"),
    [
        (Action.PAUSE, Actor.GUARD),
        (Action.AUTO_PAUSE, Actor.OPERATOR),
        (Action.RESUME, Actor.GUARD),
        (Action.RESUME, Actor.SENDER),
        (Action.CANCEL, Actor.SPLITTER),
        (Action.FINISH_SPLIT, Actor.OPERATOR),
        (Action.FAIL, Actor.OPERATOR),
    ],
)
def test_an_actor_may_make_only_its_own_moves(action: Action, actor: Actor) -> None:
    with pytest.raises(PermissionError):
        move(action, actor)

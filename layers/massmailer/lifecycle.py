"""A campaign's state machine, as data: which actor may make which move, from where, to where.

DESIGN.md §6: SCHEDULED → SPLITTING → SENDING → COMPLETED; PAUSED ⇄ (SPLITTING | SENDING); any
non-final → CANCELLED; any non-final → FAILED (with a reason). COMPLETED, CANCELLED and FAILED are
final. Every move is one conditional write on the campaign's item whose condition is the move's
``sources`` (``Campaigns.transition``), so the API, the splitter, the senders and the bounce guard
cannot undo one another: the second of two racing moves finds the state changed and is refused,
and the refusal names the state it found.

COMPLETED is reported, not stored: a SENDING campaign whose split is done and whose recipients are
all settled (``queued`` = 0) *is* complete, so no actor has to notice the last send and write it.
Operator moves are checked against the reported state first (``check``), so "pause a COMPLETED
campaign" is refused like any other move that is not in the table.

This module is the one place the moves are written; nothing else decides whether a move is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from massmailer.models import CampaignStatus

S = CampaignStatus


class Actor(StrEnum):
    OPERATOR = "operator"  # the HTTPS API, on a person's or a program's request
    SPLITTER = "splitter"
    SENDER = "sender"
    GUARD = "guard"  # the bounce function's bounce/complaint rate guard


class Action(StrEnum):
    START_SPLIT = "start_split"  # a scheduled campaign's time came (or a split request arrived)
    FINISH_SPLIT = "finish_split"  # every recipient is on a lane
    PAUSE = "pause"
    AUTO_PAUSE = "auto_pause"  # bounce or complaint rate over the campaign's threshold
    RESUME = "resume"
    CANCEL = "cancel"
    FAIL = "fail"  # audience unreadable, template cannot render, attachment policy fail_campaign


FINAL = frozenset({S.COMPLETED, S.CANCELLED, S.FAILED})
NON_FINAL = frozenset(set(S) - FINAL)
RUNNING = frozenset({S.SPLITTING, S.SENDING})


@dataclass(frozen=True)
class Move:
    action: Action
    actors: frozenset[Actor]
    sources: frozenset[CampaignStatus]
    # None: back to running — SPLITTING while the split is unfinished, else SENDING (a split that
    # finished while paused resumes as SENDING); the store decides it, conditioned on split_done.
    target: CampaignStatus | None


MOVES: dict[Action, Move] = {
    move.action: move
    for move in (
        Move(Action.START_SPLIT, frozenset({Actor.SPLITTER}), frozenset({S.SCHEDULED}), S.SPLITTING),
        Move(Action.FINISH_SPLIT, frozenset({Actor.SPLITTER}), frozenset({S.SPLITTING}), S.SENDING),
        Move(Action.PAUSE, frozenset({Actor.OPERATOR}), RUNNING, S.PAUSED),
        Move(Action.AUTO_PAUSE, frozenset({Actor.GUARD}), RUNNING, S.PAUSED),
        Move(Action.RESUME, frozenset({Actor.OPERATOR}), frozenset({S.PAUSED}), None),
        Move(Action.CANCEL, frozenset({Actor.OPERATOR}), NON_FINAL, S.CANCELLED),
        Move(Action.FAIL, frozenset({Actor.SPLITTER, Actor.SENDER}), NON_FINAL, S.FAILED),
    )
}


class TransitionNotAllowed(Exception):
    """The move is not allowed from the campaign's current state (the API answers 409)."""

    def __init__(self, action: Action, current: CampaignStatus, target: CampaignStatus | None) -> None:
        self.action, self.current, self.target = action, current, target
        to = target.value if target else "SPLITTING/SENDING"
        verb = action.value.replace("_", " ")
        super().__init__(f"cannot {verb} a {current.value} campaign: from {current.value} to {to} is not allowed")


class UnknownCampaign(LookupError):
    """No campaign has this id (the API answers 404)."""


def move(action: Action, actor: Actor) -> Move:
    """The move ``actor`` asks for; an actor asking for a move that is not its own is a bug."""
    found = MOVES[action]
    if actor not in found.actors:
        raise PermissionError(f"{actor.value} may not {action.value} a campaign")
    return found


def resume_target(split_done: bool) -> CampaignStatus:
    """Where RESUME goes: splitting again while the split is unfinished, else sending."""
    return S.SENDING if split_done else S.SPLITTING


def check(action: Action, actor: Actor, current: CampaignStatus) -> Move:
    """The move, if it is allowed from ``current``; else :class:`TransitionNotAllowed`."""
    found = move(action, actor)
    if current not in found.sources:
        raise TransitionNotAllowed(action, current, found.target)
    return found

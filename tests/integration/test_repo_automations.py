"""The automations contract (the automation, its overlap lock and its runs), against DynamoDB (moto)
and the in-memory twin alike."""

from __future__ import annotations

import pytest

from massmailer.store import Stores
from massmailer.store.automations import (
    AutomationRun,
    Automations,
    AutomationStatus,
    RunStatus,
    StoredAutomation,
)
from tests.integration.conftest import Clock


@pytest.fixture
def automations(stores: Stores) -> Automations:
    return stores.automations


def _automation(automation_id: str = "aut-1", created_at: float = 1_700_000_000.0) -> StoredAutomation:
    return StoredAutomation(
        automation_id=automation_id,
        name=f"automation {automation_id}",
        status=AutomationStatus.ACTIVE,
        spec={"target": "audiences/{scheduled:%Y-%m-%d}/x.csv", "n": 1},
        created_at=created_at,
        updated_at=created_at,
    )


def _run(run_id: str, automation_id: str = "aut-1") -> AutomationRun:
    return AutomationRun(
        automation_id=automation_id, run_id=run_id, scheduled_time=1.0, status=RunStatus.WAITING, fired_at=2.0
    )


def test_an_automation_is_written_once_and_read_back(automations: Automations) -> None:
    assert automations.create(_automation())
    assert not automations.create(_automation())
    found = automations.get("aut-1")
    assert found is not None
    assert (found.status, found.spec, found.version) == (AutomationStatus.ACTIVE, _automation().spec, 1)
    assert automations.get("nope") is None


def test_updates_hold_only_at_the_version_read_and_from_the_status_named(automations: Automations) -> None:
    automations.create(_automation())
    assert automations.update("aut-1", 1, {"status": AutomationStatus.PAUSED}, from_status=AutomationStatus.ACTIVE)
    assert not automations.update("aut-1", 1, {"name": "stale"})  # version moved on
    assert not automations.update("aut-1", 2, {"status": AutomationStatus.PAUSED}, AutomationStatus.ACTIVE)
    assert automations.update("aut-1", 2, {"spec": {"n": 2}, "name": "renamed"})
    found = automations.get("aut-1")
    assert found is not None
    assert (found.status, found.name, found.spec, found.version) == (AutomationStatus.PAUSED, "renamed", {"n": 2}, 3)
    assert not automations.delete("aut-1", 2)
    assert automations.delete("aut-1", 3)
    assert automations.get("aut-1") is None


def test_the_list_is_newest_first_and_paginated(automations: Automations) -> None:
    for i in range(3):
        automations.create(_automation(f"aut-{i}", 1_700_000_000.0 + i))
    first = automations.list(2)
    assert [a.automation_id for a in first.items] == ["aut-2", "aut-1"]
    assert first.after is not None
    second = automations.list(2, first.after)
    assert [a.automation_id for a in second.items] == ["aut-0"]
    assert second.after is None


def test_a_run_is_created_once_and_becomes_the_last_run(automations: Automations) -> None:
    automations.create(_automation())
    assert automations.create_run(_run("20310601T090000Z"))
    assert not automations.create_run(_run("20310601T090000Z"))  # a double fire: one run
    assert automations.create_run(_run("20310531T090000Z"))  # an older one does not become the last
    found = automations.get("aut-1")
    assert found is not None and found.last_run_id == "20310601T090000Z"


def test_run_moves_hold_only_from_their_source_states(automations: Automations) -> None:
    automations.create(_automation())
    automations.create_run(_run("r1"))
    running = frozenset({RunStatus.WAITING})
    assert automations.update_run("aut-1", "r1", {"status": RunStatus.RUNNING, "started_at": 5.0}, running)
    assert not automations.update_run("aut-1", "r1", {"status": RunStatus.SKIPPED_OVERLAP}, running)
    log = [{"event": "target_missing", "detail": "x"}]
    done = {"status": RunStatus.FAIL, "reason": "why", "log": log, "counts": {"sent": 0}, "ended_at": 6.0}
    assert automations.update_run("aut-1", "r1", done, frozenset({RunStatus.RUNNING}))
    run = automations.get_run("aut-1", "r1")
    assert run is not None
    assert (run.status, run.reason, run.log, run.counts, run.started_at) == (RunStatus.FAIL, "why", log, {"sent": 0}, 5)
    assert not automations.update_run("aut-1", "nope", {"status": RunStatus.DONE}, running)


def test_runs_list_newest_first_and_paginated(automations: Automations) -> None:
    automations.create(_automation())
    for run_id in ("20310101T000000Z", "20310102T000000Z", "20310103T000000Z"):
        automations.create_run(_run(run_id))
    first = automations.list_runs("aut-1", 2)
    assert [r.run_id for r in first.items] == ["20310103T000000Z", "20310102T000000Z"]
    assert first.after is not None
    second = automations.list_runs("aut-1", 2, first.after)
    assert [r.run_id for r in second.items] == ["20310101T000000Z"]
    assert second.after is None


def test_the_overlap_lock_has_one_holder_a_lease_and_one_waiter(automations: Automations, clock: Clock) -> None:
    automations.create(_automation())
    assert automations.lock("aut-1", "r1", 60)
    assert automations.lock("aut-1", "r1", 60)  # a redelivered fire resumes its own run
    assert not automations.lock("aut-1", "r2", 60)
    assert automations.wait("aut-1", "r2")
    assert not automations.wait("aut-1", "r3")  # at most one waiting run
    assert automations.unlock("aut-1", "r3") is False  # not the holder
    assert automations.unlock("aut-1", "r1") == "r2"  # released: the waiting run goes next
    assert not automations.lock("aut-1", "r3", 60)  # the waiter first
    assert automations.lock("aut-1", "r2", 60)
    clock.now += 61  # the holder crashed: its lease expires
    assert automations.lock("aut-1", "r3", 60)
    assert automations.unlock("aut-1", "r3") is None

"""Every moto patch of ``local.moto_tuning`` applies to the installed (pinned) moto.

A patch whose target moto renamed, removed or changed (its parameters, or for the validation walks
the processors moto builds) is reported as not applied and the runtime runs without it; this test is
what turns that into a failure, so a moto upgrade cannot switch a patch off unnoticed. The patches
are applied in a throwaway interpreter (``python -m local.moto_tuning``): applied here, they would
change moto for every later test of this worker and start the runtime's background threads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from local import moto_tuning
from local.children import ROOT

SERVER_PATCHES = {
    "module listing",
    "sqs clock",
    "sns signing",
    "dynamodb expression walks",
    "dynamodb expression parsing",
    "dynamodb validation walks",
    "dynamodb lookups",
    "dynamodb partition query",
    "dynamodb transactions",
    "json serializer",
    "tracked instances",
    "long-lived objects out of full collections",
    "dispatcher backend cache",
    "dynamodb without flask",
}


def _report(*args: str) -> tuple[int, list[dict[str, object]]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers")])}
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "local.moto_tuning", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.stdout.strip(), f"no report (exit {done.returncode}): {done.stderr}"
    return done.returncode, json.loads(done.stdout)


def _not_applied(report: list[dict[str, object]]) -> str:
    return "; ".join(f"{p['name']}: {p['reason']}" for p in report if not p["applied"])


def test_every_server_patch_applies_to_the_installed_moto() -> None:
    # When the local runtime's moto process applies its patches
    code, report = _report()

    # Then every patch took, and the report names each of them
    assert _not_applied(report) == "", f"moto patches that did not apply: {_not_applied(report)}"
    assert code == 0
    assert {p["name"] for p in report} == SERVER_PATCHES


def test_every_in_process_patch_applies_to_the_installed_moto() -> None:
    # When the benchmark applies the backend patches to moto in process
    code, report = _report("--in-process")

    # Then every one took
    assert _not_applied(report) == "", f"moto patches that did not apply: {_not_applied(report)}"
    assert code == 0
    assert {p["name"] for p in report} == {n for n, _ in moto_tuning._BACKEND_PATCHES}


def test_a_patch_whose_target_changed_is_reported_not_applied_and_the_others_still_apply(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a target with a different signature, and one that is gone
    target = types.SimpleNamespace(run=lambda self, other: None)
    installed = types.SimpleNamespace()

    def changed() -> None:
        moto_tuning._attr(target, "run", ("self", "node"))

    def gone() -> None:
        moto_tuning._attr(target, "missing")

    def fine() -> None:
        moto_tuning._replace(installed, "run", print)

    # When the three are applied
    report = moto_tuning._apply(
        (("test: changed target", changed), ("test: missing target", gone), ("test: fine", fine))
    )

    # Then the two are reported (and logged) with the reason, without raising, and the third applied
    assert report.not_applied == {
        "test: changed target": "SimpleNamespace.run takes (self, other), expected (self, node)",
        "test: missing target": "SimpleNamespace.missing is missing",
    }
    assert report.applied == ["test: fine"]
    assert installed.run is print
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "moto tuning 'test: changed target' not applied, running without it: "
        "SimpleNamespace.run takes (self, other), expected (self, node)",
        "moto tuning 'test: missing target' not applied, running without it: SimpleNamespace.missing is missing",
    ]

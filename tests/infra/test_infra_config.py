"""Stage config from cdk.json, and the Docker-free layer build from uv.lock (without touching PyPI)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from pydantic import ValidationError

from infra import layer
from infra.config import context_flag, read_cdk_json_context, stage_config_from_context
from infra.layer import LOCK_FILE, LayerBuild, build_layer_directory, export_runtime_requirements
from massmailer import spec

STAGES = read_cdk_json_context()["stages"]


def _with(stage: str, section: str, **changes: Any) -> dict[str, Any]:
    settings = {**STAGES[stage]}
    settings[section] = {**settings.get(section, {}), **changes}
    return {stage: settings}


def test_cdk_json_defines_dev_and_prod_with_dev_as_default() -> None:
    context = read_cdk_json_context()

    assert context["stage"] == "dev"
    assert {"dev", "prod"} <= set(STAGES)
    for stage in STAGES:
        config = stage_config_from_context(STAGES, stage)
        assert config.name == stage
        assert set(config.sending.lane_max_concurrency) == set(spec.LANES)


def test_unknown_stage_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown stage 'qa'.*dev"):
        stage_config_from_context(STAGES, "qa")


@pytest.mark.parametrize(
    ("section", "changes"),
    [
        ("sending", {"lane_max_concurrency": {"high": 1, "low": 5}}),  # AWS minimum is 2
        ("sending", {"lane_max_concurrency": {"high": 5}}),  # a lane without a cap
        ("sending", {"from_address": "not-an-address"}),
        ("sending", {"smtp_host": None}),  # smtp provider without a host
        ("alarms", {"lane_age_seconds": {"low": 60}}),
        ("sending", {"max_attemps": 3}),  # typo: unknown keys are refused
        ("sending", {"max_attempts": 50}),  # beyond what massmailer.settings accepts at run time
        ("sending", {"maybe_sent_window": 5}),  # shorter than massmailer.settings accepts (60 s)
        ("sending", {"provider_send_rates": {"ses": 10}}),  # smtp enabled without a rate
        ("sending", {"high_lane_reserve": 1.5}),
    ],
)
def test_invalid_stage_settings_are_refused(section: str, changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        stage_config_from_context(_with("dev", section, **changes), "dev")


def test_log_retention_must_be_a_cloudwatch_period() -> None:
    with pytest.raises(ValidationError, match="log_retention_days"):
        stage_config_from_context({"dev": {**STAGES["dev"], "log_retention_days": 8}}, "dev")


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), (True, True), (None, False)])
def test_context_flags_accept_cli_strings(value: object, expected: bool) -> None:
    assert context_flag(value) is expected


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock_runtime_closure(build: LayerBuild) -> dict[str, dict[str, Any]]:
    """Read uv.lock directly: the packages massmailer needs at run time on Lambda, by name."""
    packages = {_normalized(p["name"]): p for p in tomllib.loads(LOCK_FILE.read_text())["package"]}
    environment = build.marker_environment()
    closure: dict[str, dict[str, Any]] = {}
    pending = [_normalized(d["name"]) for d in packages["massmailer"]["dependencies"]]
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure[name] = packages[name]
        for dependency in packages[name].get("dependencies", []):
            marker = dependency.get("marker")
            if marker is None or Marker(marker).evaluate(environment):
                pending.append(_normalized(dependency["name"]))
    return closure


@pytest.mark.parametrize("arch", ["aarch64", "x86_64"])
def test_layer_requirements_are_the_locks_runtime_dependencies_pinned_with_their_hashes(arch: str) -> None:
    build = LayerBuild(platform_arch=arch)

    selected = layer.parse_exported_requirements(build.select(export_runtime_requirements()))
    closure = _lock_runtime_closure(build)

    pins = {_normalized(r.name): str(r.specifier) for r, _ in selected}
    assert pins == {name: f"=={package['version']}" for name, package in closure.items()}
    assert {"pydantic", "pydantic-core", "boto3", "aws-lambda-powertools"} <= set(pins)
    assert not {"pytest", "moto", "aws-cdk-lib", "mypy", "massmailer"} & set(pins)
    for requirement, hashes in selected:
        package = closure[_normalized(requirement.name)]
        locked_hashes = {w["hash"] for w in package.get("wheels", [])} | {package.get("sdist", {}).get("hash")}
        assert hashes and set(hashes) <= locked_hashes
        assert requirement.marker is None and not requirement.extras


def test_export_markers_are_judged_for_lambda_not_for_this_machine() -> None:
    exported = (
        "colorama==0.4.6 ; sys_platform == 'win32' \\\n    --hash=sha256:aa\n"
        "backport==1.0 ; python_full_version < '3.12' \\\n    --hash=sha256:bb\n"
        "armonly==2.0 ; platform_machine == 'aarch64' \\\n    --hash=sha256:cc \\\n    --hash=sha256:dd\n"
        "plain==3.0 \\\n    --hash=sha256:ee\n"
    )

    assert LayerBuild(platform_arch="aarch64").select(exported) == (
        "armonly==2.0 --hash=sha256:cc --hash=sha256:dd\nplain==3.0 --hash=sha256:ee\n"
    )
    assert LayerBuild(platform_arch="x86_64").select(exported) == "plain==3.0 --hash=sha256:ee\n"


@pytest.mark.parametrize("arch", ["aarch64", "x86_64"])
def test_pip_command_installs_lambda_platform_wheels_from_hashed_pins_only(arch: str) -> None:
    build = LayerBuild(platform_arch=arch)

    command = build.pip_command(Path("/tmp/layer/python"), Path("/tmp/layer/requirements.txt"))

    assert f"manylinux2014_{arch}" in command
    assert "--only-binary=:all:" in command
    assert {"--require-hashes", "--no-deps"} <= set(command)
    assert command[command.index("--python-version") + 1] == "3.13"
    assert command[command.index("--implementation") + 1] == "cp"
    assert command[command.index("--target") + 1] == "/tmp/layer/python"
    assert command[-2:] == ["--requirement", "/tmp/layer/requirements.txt"]


def test_layer_cache_key_is_the_locks_hash_with_architecture(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    shutil.copyfile(LOCK_FILE, lock)
    base = LayerBuild(platform_arch="aarch64", lock=lock)
    before = base.digest()

    assert before == LayerBuild(platform_arch="aarch64", lock=LOCK_FILE).digest()  # content, not path
    assert before != LayerBuild(platform_arch="x86_64", lock=lock).digest()
    lock.write_text(LOCK_FILE.read_text().replace('name = "moto"\nversion = "', 'name = "moto"\nversion = "0', 1))
    assert lock.read_text() != LOCK_FILE.read_text()
    assert base.digest() != before


def test_skip_bundling_builds_a_source_only_layer_without_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("neither uv nor pip may run when bundling is skipped")

    monkeypatch.setattr(layer, "CACHE_ROOT", tmp_path)
    monkeypatch.setattr(subprocess, "run", no_pip)

    directory = build_layer_directory(LayerBuild(platform_arch="aarch64"), bundle_dependencies=False)

    assert (directory / "python" / "massmailer" / "spec.py").is_file()
    assert sorted(p.name for p in (directory / "python").iterdir()) == ["massmailer"]
    assert not list(directory.rglob("__pycache__"))


def test_dependencies_are_installed_once_and_reused_when_only_the_package_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src" / "massmailer"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("VERSION = 1\n")
    pip_runs: list[list[str]] = []
    exported = "pydantic-core==2.50.5 \\\n    --hash=sha256:aa\n"

    def fake_pip(command: list[str], check: bool) -> None:
        pip_runs.append(command)
        assert Path(command[-1]).read_text() == "pydantic-core==2.50.5 --hash=sha256:aa\n"
        site = Path(command[command.index("--target") + 1])
        (site / "pydantic_core").mkdir(parents=True)
        (site / "bin").mkdir()

    monkeypatch.setattr(layer, "CACHE_ROOT", tmp_path / "cache")
    monkeypatch.setattr(layer, "PACKAGE_SOURCE", source)
    monkeypatch.setattr(subprocess, "run", fake_pip)
    monkeypatch.setattr(layer, "export_runtime_requirements", lambda lock: exported)
    build = LayerBuild(platform_arch="aarch64")

    first = build_layer_directory(build, bundle_dependencies=True)
    (source / "__init__.py").write_text("VERSION = 2\n")
    second = build_layer_directory(build, bundle_dependencies=True)

    assert len(pip_runs) == 1
    assert first != second and not first.exists()  # the stale layer is pruned
    assert sorted(p.name for p in (second / "python").iterdir()) == ["massmailer", "pydantic_core"]
    assert (second / "python" / "massmailer" / "__init__.py").read_text() == "VERSION = 2\n"

"""Stage config from cdk.json, and the Docker-free layer build (without touching PyPI)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from infra import layer
from infra.config import context_flag, read_cdk_json_context, stage_config_from_context
from infra.layer import LayerBuild, build_layer_directory, runtime_requirements
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


def test_layer_requirements_are_the_pyproject_runtime_dependencies() -> None:
    requirements = runtime_requirements()

    assert any(r.startswith("pydantic") for r in requirements)
    assert not any(r.startswith(("pytest", "moto", "aws-cdk-lib")) for r in requirements)


@pytest.mark.parametrize("arch", ["aarch64", "x86_64"])
def test_pip_command_targets_lambda_python_and_platform_binary_wheels_only(arch: str) -> None:
    build = LayerBuild(requirements=("pydantic>=2.7",), platform_arch=arch)

    command = build.pip_command(Path("/tmp/layer/python"))

    assert f"manylinux2014_{arch}" in command
    assert "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.13"
    assert command[command.index("--implementation") + 1] == "cp"
    assert command[command.index("--target") + 1] == "/tmp/layer/python"
    assert command[-1] == "pydantic>=2.7"


def test_layer_cache_key_changes_with_architecture_and_requirements() -> None:
    base = LayerBuild(requirements=("pydantic>=2.7",), platform_arch="aarch64")

    assert base.digest() == LayerBuild(requirements=("pydantic>=2.7",), platform_arch="aarch64").digest()
    assert base.digest() != LayerBuild(requirements=("pydantic>=2.7",), platform_arch="x86_64").digest()
    assert base.digest() != LayerBuild(requirements=("pydantic>=2.8",), platform_arch="aarch64").digest()


def test_skip_bundling_builds_a_source_only_layer_without_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip must not run when bundling is skipped")

    monkeypatch.setattr(layer, "CACHE_ROOT", tmp_path)
    monkeypatch.setattr(subprocess, "run", no_pip)

    directory = build_layer_directory(
        LayerBuild(requirements=runtime_requirements(), platform_arch="aarch64"), bundle_dependencies=False
    )

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

    def fake_pip(command: list[str], check: bool) -> None:
        pip_runs.append(command)
        site = Path(command[command.index("--target") + 1])
        (site / "pydantic_core").mkdir(parents=True)
        (site / "bin").mkdir()

    monkeypatch.setattr(layer, "CACHE_ROOT", tmp_path / "cache")
    monkeypatch.setattr(layer, "PACKAGE_SOURCE", source)
    monkeypatch.setattr(subprocess, "run", fake_pip)
    build = LayerBuild(requirements=("pydantic>=2.7",), platform_arch="aarch64")

    first = build_layer_directory(build, bundle_dependencies=True)
    (source / "__init__.py").write_text("VERSION = 2\n")
    second = build_layer_directory(build, bundle_dependencies=True)

    assert len(pip_runs) == 1
    assert first != second and not first.exists()  # the stale layer is pruned
    assert sorted(p.name for p in (second / "python").iterdir()) == ["massmailer", "pydantic_core"]
    assert (second / "python" / "massmailer" / "__init__.py").read_text() == "VERSION = 2\n"

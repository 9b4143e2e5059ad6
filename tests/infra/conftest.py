"""Synthesize each stage once per test session (per xdist worker) without bundling the layer."""

from __future__ import annotations

import os

# Before aws_cdk is imported: the jsii runtime prints a banner for Node versions it does not
# officially support (the build machine runs Node 20).
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

from collections.abc import Callable  # noqa: E402

import pytest  # noqa: E402

from tests.infra.synthesis import STAGES, Synthesized, synthesize  # noqa: E402


@pytest.fixture(scope="session")
def synth_stage(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Synthesized]:
    """``synth_stage("dev")``: the synthesized stage, built at most once per session (and worker)."""
    cache: dict[str, Synthesized] = {}

    def get(stage: str) -> Synthesized:
        if stage not in cache:
            cache[stage] = synthesize(stage, tmp_path_factory.mktemp(f"cdk-{stage}"))
        return cache[stage]

    return get


@pytest.fixture(params=STAGES)
def synth(request: pytest.FixtureRequest, synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    return synth_stage(request.param)

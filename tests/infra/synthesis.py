"""Synthesis of one stage for the infra tests: the template, the construct tree, the nag outcome."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from infra.application import build_app
from infra.config import StageConfig, read_cdk_json_context, stage_config_from_context
from infra.stack import MassMailerStack

STAGES = ("dev", "prod")


@dataclass
class Synthesized:
    stage: str
    config: StageConfig
    stack: MassMailerStack
    outdir: Path
    template_json: dict[str, Any]
    synth_error: str | None

    @property
    def template_dict(self) -> dict[str, Any]:
        return self.template_json

    @cached_property
    def template(self) -> Template:
        return Template.from_json(self.template_dict)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template_dict["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def logical_id(self, resource_type: str, **properties: Any) -> str:
        """The one resource of ``resource_type`` whose properties include ``properties``."""
        matches = [
            k
            for k, v in self.of_type(resource_type).items()
            if all(v.get("Properties", {}).get(p) == value for p, value in properties.items())
        ]
        assert len(matches) == 1, f"{resource_type} {properties}: found {matches}"
        return matches[0]


def synthesize(stage: str, outdir: Path) -> Synthesized:
    """Synth with cdk-nag as ``app.py`` does; if nag refuses, synth again without it so that the
    template tests still run and only the compliance tests report the findings."""
    config = stage_config_from_context(read_cdk_json_context()["stages"], stage)
    context = {"stage": stage, "skip_bundling": True}
    app, stack = build_app(context, outdir=str(outdir / "nag"))
    synth_error = None
    try:
        assembly = app.synth()
    except RuntimeError as error:  # policy validation (cdk-nag) failed
        synth_error = str(error)
        app, stack = build_app(context, outdir=str(outdir / "plain"), nag=False)
        assembly = app.synth()
    template = assembly.get_stack_by_name(stack.stack_name).template
    return Synthesized(stage, config, stack, outdir, json.loads(json.dumps(template)), synth_error)

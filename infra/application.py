"""Build the CDK app for one stage: context -> StageConfig -> MassMailerStack + cdk-nag.

Context keys (cdk.json, ``-c key=value`` or ``CDK_CONTEXT_JSON``):

* ``stage``         — which entry of ``stages`` to deploy (default ``dev``).
* ``stages``        — the per-stage settings (see ``infra.config.StageConfig``).
* ``skip_bundling`` — ``true``: do not pip-install the layer's dependencies (tests, quick synths).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from infra.config import (
    DEFAULT_STAGE,
    StageConfig,
    context_flag,
    read_cdk_json_context,
    stage_config_from_context,
)
from infra.stack import MassMailerStack


def stack_name(stage: str) -> str:
    return f"MassMailer-{stage}"


def build_app(
    context: Mapping[str, Any] | None = None, *, outdir: str | None = None, nag: bool = True
) -> tuple[App, MassMailerStack]:
    """The app with its one stack; ``context`` overrides cdk.json (tests pass stage/skip_bundling).

    With ``nag`` (always, outside tests) synth fails on any unacknowledged AwsSolutions finding.
    """
    app = App(context={**read_cdk_json_context(), **(context or {})}, outdir=outdir)
    stage = str(app.node.try_get_context("stage") or DEFAULT_STAGE)
    config = stage_config_from_context(app.node.try_get_context("stages") or {}, stage)
    stack = MassMailerStack(
        app,
        stack_name(stage),
        config=config,
        bundle_dependencies=not context_flag(app.node.try_get_context("skip_bundling")),
        env=_environment(config),
        description=f"MassMailer serverless email pipeline ({stage})",
        termination_protection=config.removal_policy == "retain",
    )
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def _environment(config: StageConfig) -> Environment:
    return Environment(
        account=config.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=config.region or os.environ.get("CDK_DEFAULT_REGION"),
    )

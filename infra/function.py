"""One MassMailer Lambda: its code asset, the shared layer, a log group, a least-privilege role."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import REPO_ROOT
from infra.layer import LAMBDA_RUNTIME
from infra.nag import acknowledge, wildcard_resource
from massmailer import spec

LAMBDAS_DIR = REPO_ROOT / "lambdas"
HANDLER = "handler.handler"
_ASSET_EXCLUDES = ["__pycache__", "*.pyc", "tests", ".pytest_cache"]


class MailerFunction(Construct):
    """A Python function named and sized by its ``spec.FunctionSpec``, code from ``lambdas/<name>/``.

    Its role starts empty (no AWS-managed policies): it may write to its own log group and send
    X-Ray traces; everything else is granted by the caller.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        function_spec: spec.FunctionSpec,
        layer: lambda_.ILayerVersion,
        architecture: lambda_.Architecture,
        environment: Mapping[str, str],
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        function_name = spec.resource_name(stage, function_spec.name)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.role = iam.Role(
            self,
            "Role",
            description=f"Execution role of {function_name}",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=f"MassMailer {function_spec.name} ({stage})",
            runtime=LAMBDA_RUNTIME,
            architecture=architecture,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(LAMBDAS_DIR / function_spec.name), exclude=_ASSET_EXCLUDES),
            layers=[layer],
            timeout=Duration.seconds(function_spec.timeout_seconds),
            memory_size=function_spec.memory_mb,
            environment=dict(environment),
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            tracing=lambda_.Tracing.ACTIVE,
        )
        acknowledge(
            self.role,
            wildcard_resource(self, "*"),
            "X-Ray PutTraceSegments/PutTelemetryRecords (added by active tracing) do not support "
            "resource-level permissions; AWS requires Resource '*' for them.",
        )
        acknowledge(
            self.function,
            "L1",
            f"The runtime is pinned to {LAMBDA_RUNTIME.name}: the shared layer's binary wheels "
            "(pydantic-core, markupsafe) are built for exactly this CPython version.",
        )

    def add_environment(self, name: str, value: str) -> None:
        self.function.add_environment(name, value)

    def acknowledge_wildcards(self, reason: str, *findings: str) -> None:
        """Accept specific IAM5 wildcard findings on this function's policy, with one reason."""
        for finding in findings:
            acknowledge(self.role, finding, reason)

"""The HTTPS API: API Gateway REST API -> ingest function (Lambda proxy).

Every route under ``/v1`` requires SigV4 (AWS_IAM) except the RFC 8058 one-click unsubscribe route,
which mail clients call without credentials; its request carries an HMAC-signed token that the
ingest function verifies.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.nag import acknowledge
from massmailer import spec

API_VERSION = "v1"
# What the ingest function serves behind ``/v1/{proxy+}`` (ANY, SigV4); API Gateway forwards every
# method and path under /v1, the resolver answers 404/405 for anything else.
ROUTES = (
    ("POST", "/v1/messages"),
    ("GET", "/v1/messages/{id}"),
    ("POST", "/v1/campaigns"),
    ("GET", "/v1/campaigns"),
    ("GET", "/v1/campaigns/{id}"),
    ("GET", "/v1/campaigns/{id}/recipients"),
    ("POST", "/v1/campaigns/{id}/recipients/export"),
    ("GET", "/v1/exports/{id}"),
    ("POST", "/v1/campaigns/{id}/pause"),
    ("POST", "/v1/campaigns/{id}/resume"),
    ("POST", "/v1/campaigns/{id}/cancel"),
    ("POST", "/v1/automations"),
    ("GET", "/v1/automations"),
    ("GET", "/v1/automations/{id}"),
    ("PATCH", "/v1/automations/{id}"),
    ("DELETE", "/v1/automations/{id}"),
    ("POST", "/v1/automations/{id}/pause"),
    ("POST", "/v1/automations/{id}/resume"),
    ("POST", "/v1/automations/{id}/run-now"),
    ("POST", "/v1/automations/{id}/trigger"),
    ("GET", "/v1/automations/{id}/runs"),
    ("GET", "/v1/automations/{id}/runs/{run_id}"),
)
UNSUBSCRIBE_RESOURCE = "unsubscribe"
UNSUBSCRIBE_METHODS = ("GET", "POST")
_PUBLIC_UNSUBSCRIBE_REASON = (
    "RFC 8058 one-click unsubscribe: mailbox providers (Gmail, Yahoo) POST, and people GET, the List-Unsubscribe "
    "URL without credentials. Each request carries an HMAC-signed token that the ingest function "
    "verifies; the stage throttle bounds abuse."
)


class IngestApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        handler: lambda_.IFunction,
        rate_limit: float,
        burst_limit: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        access_logs = logs.LogGroup(self, "AccessLogs", retention=log_retention, removal_policy=removal_policy)
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=spec.resource_name(stage, "api"),
            description=f"MassMailer HTTPS API ({stage})",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # API Gateway's CloudWatch role is one per account and region, shared by every stage
            # deployed there: never delete it with a stack.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=stage,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=rate_limit,
                throttling_burst_limit=burst_limit,
            ),
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
        )
        stack = Stack.of(self)
        # Built from the API id and the literal stage name: referencing the Stage resource would
        # make the function depend on the deployment that depends on the function.
        self.base_url = f"https://{self.rest_api.rest_api_id}.execute-api.{stack.region}.{stack.url_suffix}/{stage}"

        # Required parameters are checked here; JSON bodies against each route's pydantic model in
        # the ingest function (one proxy route serves many body shapes).
        validator = self.rest_api.add_request_validator(
            "RequestValidator", validate_request_parameters=True, validate_request_body=True
        )
        integration = apigw.LambdaIntegration(handler, proxy=True, allow_test_invoke=False)
        version = self.rest_api.root.add_resource(API_VERSION)
        version.add_resource("{proxy+}").add_method(
            "ANY",
            integration,
            authorization_type=apigw.AuthorizationType.IAM,
            request_validator=validator,
            request_parameters={"method.request.path.proxy": True},
        )
        unsubscribe = version.add_resource(UNSUBSCRIBE_RESOURCE)
        for http_method in UNSUBSCRIBE_METHODS:
            method = unsubscribe.add_method(
                http_method,
                integration,
                authorization_type=apigw.AuthorizationType.NONE,
                request_validator=validator,
            )
            acknowledge(method, "APIG4", _PUBLIC_UNSUBSCRIBE_REASON)

        acknowledge(
            self.rest_api,
            "COG4",
            "API clients are AWS principals (services, operators) that sign requests with SigV4 "
            "(AWS_IAM authorization); there are no end users, so no Cognito user pool. The one "
            "public route is the HMAC-token unsubscribe link.",
        )
        acknowledge(
            self.rest_api,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level CloudWatch role (execution and access logging) uses the "
            "AWS-managed policy AWS documents for exactly this role; it only writes API logs.",
        )
        acknowledge(
            self.rest_api,
            "APIG3",
            "No WAF web ACL: every route but unsubscribe requires SigV4, the unsubscribe route "
            "only accepts HMAC-signed tokens, and stage throttling caps request rates. A WAF can be "
            "associated by the account's central firewall policy without changing this stack.",
        )

    @property
    def versioned_url(self) -> str:
        return f"{self.base_url}/{API_VERSION}"

    @property
    def unsubscribe_url(self) -> str:
        return f"{self.versioned_url}/{UNSUBSCRIBE_RESOURCE}"

"""API: IAM on every method except the public one-click unsubscribe route; logs and throttling."""

from __future__ import annotations

from typing import Any

from infra.api import UNSUBSCRIBE_RESOURCE
from massmailer import spec
from tests.infra.synthesis import Synthesized


def _path_part(synth: Synthesized, method: dict[str, Any]) -> str:
    resource_id = method["Properties"]["ResourceId"]["Ref"]
    return synth.resources[resource_id]["Properties"]["PathPart"]


def test_every_method_requires_sigv4_except_unsubscribe(synth: Synthesized) -> None:
    methods = synth.of_type("AWS::ApiGateway::Method").values()
    public = {m["Properties"]["HttpMethod"] for m in methods if _path_part(synth, m) == UNSUBSCRIBE_RESOURCE}
    private = [m for m in methods if _path_part(synth, m) != UNSUBSCRIBE_RESOURCE]

    assert public == {"GET", "POST"}
    assert private, "the authenticated /v1/{proxy+} route is missing"
    for method in methods:
        expected = "NONE" if _path_part(synth, method) == UNSUBSCRIBE_RESOURCE else "AWS_IAM"
        assert method["Properties"]["AuthorizationType"] == expected, method


def test_unsubscribe_is_only_reachable_on_its_own_resource(synth: Synthesized) -> None:
    paths = {r["Properties"]["PathPart"] for r in synth.of_type("AWS::ApiGateway::Resource").values()}

    assert paths == {"v1", "{proxy+}", UNSUBSCRIBE_RESOURCE}


def test_every_method_is_validated_and_proxied_to_ingest(synth: Synthesized) -> None:
    ingest = synth.logical_id("AWS::Lambda::Function", FunctionName=spec.resource_name(synth.stage, spec.INGEST.name))
    [validator] = synth.of_type("AWS::ApiGateway::RequestValidator")

    for method in synth.of_type("AWS::ApiGateway::Method").values():
        props = method["Properties"]
        assert props["RequestValidatorId"] == {"Ref": validator}
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert ingest in str(props["Integration"]["Uri"])


def test_stage_logs_access_and_throttles_per_stage_config(synth: Synthesized) -> None:
    [stage] = synth.of_type("AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    [settings] = props["MethodSettings"]

    assert props["StageName"] == synth.stage
    assert "DestinationArn" in props["AccessLogSetting"]
    assert settings["ThrottlingRateLimit"] == synth.config.api.rate_limit
    assert settings["ThrottlingBurstLimit"] == synth.config.api.burst_limit
    assert settings["LoggingLevel"] == "ERROR"
    assert props["TracingEnabled"] is True


def test_every_route_the_ingest_function_serves_is_behind_the_authenticated_proxy(synth: Synthesized) -> None:
    from infra.api import ROUTES
    from lambdas.ingest.handler import app

    routes = [*app._static_routes, *app._dynamic_routes]
    served = {(route.method, route.path.replace("<", "{").replace(">", "}")) for route in routes}
    proxied = [m for m in synth.of_type("AWS::ApiGateway::Method").values() if _path_part(synth, m) == "{proxy+}"]
    assert [m["Properties"]["HttpMethod"] for m in proxied] == ["ANY"]
    assert proxied[0]["Properties"]["AuthorizationType"] == "AWS_IAM"
    for method, path in ROUTES:
        assert path.startswith("/v1/") and path != "/v1/unsubscribe"
        kinds = ("campaign", "export", "automation")
        kind = next((k for k in kinds if f"/{k}s/" in path or path.endswith(f"/{k}s")), "message")
        rule = path.replace("{id}", f"{{{kind}_id}}")
        assert (method, rule) in served, (method, path)

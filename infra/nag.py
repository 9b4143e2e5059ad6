"""cdk-nag acknowledgements (v3: ``Validations.of(scope).acknowledge``), always with a reason.

cdk-nag v3 matches acknowledgements by exact finding id, e.g.
``AwsSolutions-IAM5[Resource::<JobTable1234.Arn>/index/*]``. The helpers here build those ids
from the same tokens the grants use, so an acknowledgement names one specific wildcard and stops
matching when the wildcard changes.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct

PACK = "AwsSolutions"


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Accept finding ``rule`` (e.g. "S1" or "IAM5[Action::s3:List*]") on scope and its children."""
    if len(reason.strip()) < 20:
        raise ValueError(f"acknowledging {rule} needs a specific reason, got {reason!r}")
    rule_id = rule if rule.startswith(f"{PACK}-") else f"{PACK}-{rule}"
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def wildcard_resource(scope: IConstruct, resource: str) -> str:
    """The IAM5 finding suffix cdk-nag reports for a wildcard resource (tokens allowed)."""
    return f"IAM5[Resource::{_flatten(Stack.of(scope).resolve(resource))}]"


def wildcard_action(action: str) -> str:
    return f"IAM5[Action::{action}]"


def _flatten(node: Any) -> str:
    """Port of cdk-nag's ``flattenCfnReference``: intrinsics rendered as ``<Logical.Attr>``."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(_flatten(item) for item in items)
        if "Fn::Sub" in node:
            return _flatten(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{_flatten(resource)}.{_flatten(attribute)}>"
        if "Fn::ImportValue" in node:
            return _flatten(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{_flatten(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))

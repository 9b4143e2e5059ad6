"""Test helpers shared by the tiers: API Gateway events, a Lambda context, fixture loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from local.apigw import api_event
from local.lambda_context import LambdaContext

__all__ = ["EVENTS", "ROOT", "api_event", "context", "load_event"]

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "tests" / "events"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def context(name: str = "test") -> LambdaContext:
    return LambdaContext(function_name=name)

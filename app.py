#!/usr/bin/env python3
"""CDK entry point: ``cdk synth -c stage=prod`` or ``make synth STAGE=prod``.

The stage comes from context (``-c stage=…``, ``CDK_CONTEXT_JSON`` or cdk.json's default); its
settings from cdk.json's ``stages`` map. cdk-nag's AwsSolutions checks run on every synth.
"""

from infra.application import build_app


def main() -> None:
    app, _ = build_app()
    app.synth()


if __name__ == "__main__":
    main()

"""Secrets: SMTP relay credentials (set by an operator) and the unsubscribe-link signing key."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.nag import acknowledge
from massmailer import spec

SIGNING_KEY_LENGTH = 64


class MailSecrets(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: str, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        # The relay's credentials are issued by the relay provider; CloudFormation only creates the
        # container. Operators store {"username": ..., "password": ...} in it
        # (see the README, "After the first deploy").
        self.smtp = secretsmanager.Secret(
            self,
            "SmtpRelay",
            secret_name=spec.smtp_secret_name(stage),
            description="MassMailer SMTP relay credentials (secondary provider): {username, password}",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template='{"username": "CHANGE_ME"}',
                generate_string_key="password",
                exclude_punctuation=True,
            ),
            removal_policy=removal_policy,
        )
        acknowledge(
            self.smtp,
            "SMG4",
            "The SMTP relay credentials are issued by the external relay provider; Secrets Manager "
            "cannot rotate them. Operators rotate them at the provider and put the new value here.",
        )
        self.signing_key = secretsmanager.Secret(
            self,
            "SigningKey",
            secret_name=spec.signing_secret_name(stage),
            description=(
                "MassMailer HMAC keys of one-click unsubscribe tokens: a bare secret (key id k0), or a "
                "JSON object {key id: secret} (or 'kid:secret,kid:secret'); the first signs, every listed "
                "one verifies"
            ),
            # A bare 64-character secret, key id k0 (README, "Unsubscribe"). Unchanged since before key
            # ids: a changed generator would make CloudFormation generate a new value, and every link
            # already delivered would stop working.
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=SIGNING_KEY_LENGTH, exclude_punctuation=True
            ),
            removal_policy=removal_policy,
        )
        acknowledge(
            self.signing_key,
            "SMG4",
            "Unsubscribe links already delivered must keep working (RFC 8058): a rotation puts a new "
            "key id first and keeps the old one listed until its links have aged out, so it is done "
            "by hand as the README's 'Unsubscribe' section describes, never by a rotation Lambda.",
        )

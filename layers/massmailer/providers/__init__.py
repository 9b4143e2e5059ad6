"""Providers: the ``Provider`` port, its SES v2 and SMTP adapters, and the failover chain."""

from massmailer.providers.base import Provider, SendReceipt
from massmailer.providers.chain import ProviderChain

__all__ = ["Provider", "ProviderChain", "SendReceipt"]

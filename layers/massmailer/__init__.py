"""MassMailer's shared domain package: models, store, queues, providers, rendering, sending."""

__version__ = "0.1.0"

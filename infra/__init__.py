"""AWS CDK app of MassMailer: one construct per concern, composed by ``infra.stack``."""

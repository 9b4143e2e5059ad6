"""Monitoring: alarm topic, alarms (DLQ depth, lane age, function errors/throttles, bounce and
complaint rates) and the operations dashboard."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import METRICS_NAMESPACE
from infra.topics import encrypted_topic
from massmailer import spec

MINUTE = Duration.minutes(1)
HOUR = Duration.hours(1)
LANE_AGE_EVALUATION_MINUTES = 3

# Custom metrics the functions publish (Powertools EMF, dimension service=massmailer-<stage>).
SEND_METRICS = ("EmailsSent", "SentViaSes", "SentViaSmtp")
FAILURE_METRICS = ("EmailsFailed", "EmailsRetried", "Throttles")
FALLBACK_METRICS = ("ProviderFallbacks",)
OUTCOME_METRICS = ("Deliveries", "Bounces", "SoftBounces", "Complaints")


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        service_name: str,
        alarm_email: str | None,
        lanes: Mapping[str, sqs.IQueue],
        dead_letter_queues: Mapping[str, sqs.IQueue],
        functions: Mapping[str, lambda_.IFunction],
        lane_age_seconds: Mapping[str, int],
        bounce_rate_percent: float,
        complaint_rate_percent: float,
        rate_min_sends: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self._service_name = service_name
        self.topic = encrypted_topic(
            self,
            "AlarmTopic",
            topic_name=spec.resource_name(stage, "alarms"),
            publisher_service="cloudwatch.amazonaws.com",
            removal_policy=removal_policy,
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        for name, dlq in dead_letter_queues.items():
            self._alarm(
                f"{name}-dlq-depth",
                dlq.metric_approximate_number_of_messages_visible(period=MINUTE, statistic="Maximum"),
                threshold=0,
                description=f"Messages in the {name} dead-letter queue: they need a look and a redrive.",
            )
        for lane, queue in lanes.items():
            self._alarm(
                f"{lane}-lane-age",
                queue.metric_approximate_age_of_oldest_message(period=MINUTE, statistic="Maximum"),
                threshold=lane_age_seconds[lane],
                evaluation_periods=LANE_AGE_EVALUATION_MINUTES,
                description=f"The oldest message on the {lane} lane waits longer than "
                f"{lane_age_seconds[lane]} s: the lane is not keeping up.",
            )
        for name, fn in functions.items():
            self._alarm(
                f"{name}-errors",
                fn.metric_errors(period=MINUTE, statistic="Sum"),
                threshold=0,
                description=f"The {name} function failed (unhandled errors or timeouts).",
            )
            self._alarm(
                f"{name}-throttles",
                fn.metric_throttles(period=MINUTE, statistic="Sum"),
                threshold=0,
                description=f"The {name} function was throttled (account concurrency exhausted).",
            )
        self.bounce_rate = self._rate("Bounces", rate_min_sends)
        self.complaint_rate = self._rate("Complaints", rate_min_sends)
        self._alarm(
            "bounce-rate",
            self.bounce_rate,
            threshold=bounce_rate_percent,
            description=f"Bounce rate above {bounce_rate_percent}% of mails sent in the last hour "
            "(SES reviews accounts at 5%).",
        )
        self._alarm(
            "complaint-rate",
            self.complaint_rate,
            threshold=complaint_rate_percent,
            description=f"Complaint rate above {complaint_rate_percent}% of mails sent in the last hour "
            "(SES reviews accounts at 0.1%, Gmail/Yahoo require < 0.3%).",
        )
        self.dashboard = self._dashboard(stage, lanes, dead_letter_queues, functions)

    def _metric(self, name: str, period: Duration = MINUTE) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": self._service_name},
            statistic="Sum",
            period=period,
        )

    def _rate(self, events_metric: str, min_sends: int) -> cloudwatch.MathExpression:
        """Percent of mails sent in the last hour that produced ``events_metric``."""
        events_id = events_metric.lower()  # unique per rate: both rates share one dashboard graph
        return cloudwatch.MathExpression(
            expression=f"IF(sent >= {min_sends}, 100 * {events_id} / sent, 0)",
            using_metrics={"sent": self._metric("EmailsSent", HOUR), events_id: self._metric(events_metric, HOUR)},
            label=f"{events_metric} rate (%)",
            period=HOUR,
        )

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            f"Alarm-{name}",
            alarm_name=f"{self._service_name}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=evaluation_periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
        self.alarms[name] = alarm
        return alarm

    def _graph(self, title: str, metrics: list[cloudwatch.IMetric], width: int = 12) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(title=title, left=metrics, width=width, height=6)

    def _dashboard(
        self,
        stage: str,
        lanes: Mapping[str, sqs.IQueue],
        dead_letter_queues: Mapping[str, sqs.IQueue],
        functions: Mapping[str, lambda_.IFunction],
    ) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=spec.resource_name(stage, "operations"))
        dashboard.add_widgets(
            self._graph("Send rate (emails/min)", [self._metric(m) for m in SEND_METRICS]),
            self._graph("Failures, retries, throttling", [self._metric(m) for m in FAILURE_METRICS]),
        )
        dashboard.add_widgets(
            self._graph("Provider fallbacks", [self._metric(m) for m in FALLBACK_METRICS]),
            self._graph("Outcomes", [self._metric(m) for m in OUTCOME_METRICS]),
        )
        dashboard.add_widgets(
            self._graph(
                "Lane depth (visible messages)",
                [
                    q.metric_approximate_number_of_messages_visible(label=lane, period=MINUTE)
                    for lane, q in lanes.items()
                ],
            ),
            self._graph(
                "Lane age (oldest message, s)",
                [
                    q.metric_approximate_age_of_oldest_message(label=lane, period=MINUTE, statistic="Maximum")
                    for lane, q in lanes.items()
                ],
            ),
        )
        dashboard.add_widgets(
            self._graph("Bounce and complaint rate (%)", [self.bounce_rate, self.complaint_rate], width=8),
            self._graph(
                "Dead-letter queues",
                [
                    q.metric_approximate_number_of_messages_visible(label=n, period=MINUTE)
                    for n, q in dead_letter_queues.items()
                ],
                width=8,
            ),
            self._graph(
                "Function errors",
                [fn.metric_errors(label=n, period=MINUTE) for n, fn in functions.items()],
                width=8,
            ),
        )
        return dashboard

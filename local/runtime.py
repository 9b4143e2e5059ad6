"""The local runtime: the whole pipeline on loopback, same handlers, wired the way AWS wires them.

``LocalRuntime`` starts and stops (in this order):

1. **moto in server mode** (``local.moto_process``), the emulated AWS endpoint — DynamoDB in a
   second moto process of its own (``AWS_ENDPOINT_URL_DYNAMODB``), so both cores serve AWS calls;
2. **the resources**, created from ``massmailer.spec`` by ``local.provision`` — the same names, keys,
   indexes, lanes, DLQs and redrive policies, SNS topic and bounce buffer, bucket, SES identity and
   configuration set, and schedule group the CDK stack creates;
3. **the SMTP relay** (``local.smtp_relay``), the secondary provider, writing ``.eml`` files to the
   outbox;
4. **the SES endpoint** (``local.ses_proxy``): moto's SES v2 plus the mailbox simulator, event
   publishing through SNS, and the fault switches;
5. **the functions**, each a set of execution environments (processes, ``local.function_process``)
   with the function's environment — ``AWS_ENDPOINT_URL`` (moto), ``AWS_ENDPOINT_URL_DYNAMODB``,
   ``AWS_ENDPOINT_URL_SESV2`` (the SES endpoint), and the ``MM_*`` settings: the API front for
   ``ingest``, and for every queue of the spec, up to ``max_concurrency`` pollers (capped by
   ``RuntimeConfig.environments``);
6. **the scheduler loop** (``local.scheduler_loop``), which fires what the ingest function schedules.

Nothing in the domain code knows it runs locally: it reads the standard AWS settings and ``MM_*``.
Environments that die (a crash, a function timeout) are started again, as Lambda would.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local.children import ROOT, Child, stop_all
from local.event_source import queue_depth
from local.provision import provision
from local.scheduler_loop import SchedulerLoop, parse_fault
from local.ses_proxy import SesEndpoint, SesFaults
from local.smtp_relay import SmtpRelay, free_port
from massmailer import spec

logger = logging.getLogger("local.runtime")

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
# Execution environments per event source on this machine; the spec's max_concurrency is the ceiling.
DEFAULT_ENVIRONMENTS = {"high": 2, "low": 3, "split": 1, "bounce": 2}
RELAY_MESSAGES_KEPT = 50_000  # in memory, for the demo and tests; the outbox has every one
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT", "PYTHONDONTWRITEBYTECODE")


@dataclass
class RuntimeConfig:
    api_port: int = 8080  # 0: a free port
    stage: str = "local"
    state_dir: Path = ROOT / ".local"
    outbox: Path | None = None  # default: <state_dir>/outbox
    from_address: str = "news@massmailer.test"
    environments: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_ENVIRONMENTS))
    # None: a failed record reappears after the queue's visibility timeout, as on AWS (6 × the
    # function timeout: 12 minutes for the lanes). A number: after that many seconds (demo, tests).
    failed_visibility: int | None = None
    event_delay_scale: float = 1.0  # how long after a send SES's events are published (x DELAYS)
    scheduler_tick: float = 0.5
    long_poll_seconds: int = 1  # Lambda long-polls 20 s; short here so a stop is prompt
    # DynamoDB in a moto process of its own (AWS_ENDPOINT_URL_DYNAMODB): moto serves requests under
    # one interpreter lock, and DynamoDB is half of its work, so this puts the second core to use.
    separate_dynamodb: bool = True
    ses_faults: SesFaults = field(default_factory=SesFaults)
    scheduler_fault: str | None = None  # "double": the scheduler loop delivers every invocation twice
    function_env: dict[str, str] = field(default_factory=dict)  # extra settings, e.g. MM_MAX_ATTEMPTS
    # Niceness added to the environments of a queue, e.g. {"low": 10}. On AWS each execution
    # environment has CPU of its own; on a small machine every environment shares the same cores, and
    # a busy low lane can take the CPU the high lane's environments need. Off by default.
    nice: dict[str, int] = field(default_factory=dict)
    write_state_file: bool = True

    @property
    def outbox_dir(self) -> Path:
        return self.outbox or self.state_dir / "outbox"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "runtime.json"


@dataclass
class _Environment:
    function: str
    queue: str | None
    index: int
    child: Child
    restarts: int = 0


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise RuntimeError(
                f"port {port} on 127.0.0.1 is in use (another `make up`?); choose another: make up PORT=8081"
            ) from None


class LocalRuntime:
    """``with LocalRuntime(RuntimeConfig(api_port=0)) as rt: rt.api("POST", "/v1/messages", {...})``"""

    def __init__(self, config: RuntimeConfig | None = None) -> None:
        self.config = config or RuntimeConfig()
        self.moto: Child | None = None
        self.moto_dynamodb: Child | None = None
        self.resources: dict[str, Any] = {}
        self.relay: SmtpRelay | None = None
        self.ses: SesEndpoint | None = None
        self.scheduler: SchedulerLoop | None = None
        self.environments: list[_Environment] = []
        self.api_port = 0
        self.started_at = 0.0
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._clients: dict[str, Any] = {}
        self._log_handler: logging.Handler | None = None
        self.failure: str | None = None

    # -- endpoints ------------------------------------------------------------------------------
    @property
    def aws_url(self) -> str:
        assert self.moto is not None, "the runtime is not started"
        return f"http://127.0.0.1:{self.moto.detail}"

    @property
    def dynamodb_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_dynamodb.detail}" if self.moto_dynamodb else self.aws_url

    def service_endpoints(self) -> dict[str, str]:
        """Per-service endpoints besides ``aws_url`` (botocore's ``AWS_ENDPOINT_URL_<SERVICE>``)."""
        endpoints = {"sesv2": self.ses.url} if self.ses is not None else {}
        if self.moto_dynamodb:
            endpoints["dynamodb"] = self.dynamodb_url
        return endpoints

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ses_url(self) -> str:
        assert self.ses is not None
        return self.ses.url

    @property
    def control_url(self) -> str:
        return f"{self.ses_url}/_local"

    def endpoints(self) -> dict[str, Any]:
        assert self.relay is not None
        return {
            "api": self.api_url,
            "aws": self.aws_url,
            "dynamodb": self.dynamodb_url,
            "ses": self.ses_url,
            "smtp": f"smtp://127.0.0.1:{self.relay.port}",
            "outbox": str(self.config.outbox_dir),
            "logs": str(self.config.logs_dir),
            "faults": f"{self.control_url}/faults",
            "status": f"{self.control_url}/status",
            "stage": self.config.stage,
            "region": REGION,
        }

    def client(self, service: str) -> Any:
        """A boto3 client for the emulated AWS (for the demo, tests and operators — not the functions)."""
        if service not in self._clients:
            self._clients[service] = boto3.session.Session(
                aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                region_name=REGION,
            ).client(
                service,  # type: ignore[call-overload]
                endpoint_url=self.service_endpoints().get(service, self.aws_url),
                config=Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=20),
            )
        return self._clients[service]

    def resource(self, service: str) -> Any:
        """A boto3 resource for the emulated AWS (e.g. ``rt.resource("dynamodb").Table(...)``)."""
        return boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        ).resource(service, endpoint_url=self.service_endpoints().get(service, self.aws_url))  # type: ignore[call-overload]

    # -- start ----------------------------------------------------------------------------------
    def start(self) -> LocalRuntime:
        cfg = self.config
        self.started_at = time.monotonic()
        if cfg.api_port:
            _check_port_free(cfg.api_port)  # before touching the logs and outbox of a runtime that may own it
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(cfg.logs_dir, ignore_errors=True)
        cfg.logs_dir.mkdir(parents=True, exist_ok=True)
        cfg.outbox_dir.mkdir(parents=True, exist_ok=True)
        for old in cfg.outbox_dir.glob("*.eml"):
            old.unlink()
        self._log_to(cfg.logs_dir / "runtime.log")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        cfg = self.config
        self.moto = Child("moto", "local.moto_process", ["--port", "0"], self._base_env(), cfg.logs_dir / "moto.log")
        self.moto.start(wait=False)
        if cfg.separate_dynamodb:
            self.moto_dynamodb = Child(
                "moto-dynamodb",
                "local.moto_process",
                ["--port", "0"],
                self._base_env(),
                cfg.logs_dir / "moto-dynamodb.log",
            )
            self.moto_dynamodb.start(wait=False)
            self.moto_dynamodb.wait_ready(timeout=60)
        self.moto.wait_ready(timeout=60)
        logger.info("moto listening on %s (DynamoDB on %s)", self.aws_url, self.dynamodb_url)
        session = boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        self.resources = provision(
            cfg.stage,
            from_address=cfg.from_address,
            session=session,
            endpoint_url=self.aws_url,
            service_endpoints={"dynamodb": self.dynamodb_url},
        )
        self.relay = SmtpRelay(cfg.outbox_dir, keep=RELAY_MESSAGES_KEPT).start()
        self.ses = SesEndpoint(
            self.aws_url,
            self.client("sns"),
            self.resources["event_destinations"],
            region=REGION,
            event_delay_scale=cfg.event_delay_scale,
            faults=cfg.ses_faults,
            control=self._control,
        ).start()
        self.api_port = cfg.api_port or free_port()
        env = self.function_env()
        self.environments = self._plan(env)
        for environment in self.environments:
            environment.child.start(wait=False)
        for environment in self.environments:
            environment.child.wait_ready(timeout=90)
        self.scheduler = SchedulerLoop(
            self.client("scheduler"),
            self.client("sqs"),
            self.client("sns"),
            tick=cfg.scheduler_tick,
            fault=parse_fault(cfg.scheduler_fault),
        ).start()
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()
        if cfg.write_state_file:
            cfg.state_file.write_text(json.dumps({"pid": os.getpid(), **self.endpoints()}, indent=2))
        logger.info("runtime ready in %.1f s: %s", time.monotonic() - self.started_at, self.endpoints())

    def _log_to(self, path: Path) -> None:
        """The runtime's own log (restarts, faults, scheduler firings) in ``<logs>/runtime.log``."""
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logging.getLogger("local").addHandler(handler)
        logging.getLogger("local").setLevel(logging.INFO)
        self._log_handler = handler

    @staticmethod
    def _base_env() -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith("VIRTUAL_ENV")}
        env.update(CREDENTIALS)
        env.update(
            {
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_CONFIG_FILE": os.devnull,  # never the developer's real profiles
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers")]),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def function_env(self) -> dict[str, str]:
        """What every function gets: the standard AWS endpoint settings and the ``MM_*`` settings."""
        assert self.relay is not None and self.ses is not None
        env = self._base_env()
        env.update(self.resources["env"])
        env.update(
            {
                "AWS_ENDPOINT_URL": self.aws_url,
                **{f"AWS_ENDPOINT_URL_{service.upper()}": url for service, url in self.service_endpoints().items()},
                "MM_PROVIDERS": "ses,smtp",
                "MM_SMTP_HOST": "127.0.0.1",
                "MM_SMTP_PORT": str(self.relay.port),
                "MM_SIGNING_KEYS": "local1:local-signing-key-1",
                "MM_UNSUBSCRIBE_BASE_URL": self.api_url,
                "POWERTOOLS_METRICS_NAMESPACE": spec.METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            }
        )
        env.update(self.config.function_env)
        return env

    def _plan(self, env: dict[str, str]) -> list[_Environment]:
        cfg = self.config
        logs = cfg.logs_dir
        plan = [
            _Environment(
                "ingest",
                None,
                0,
                Child(
                    "ingest",
                    "local.function_process",
                    ["--function", "ingest", "--stage", cfg.stage, "--http-port", str(self.api_port)],
                    {**env, "POWERTOOLS_SERVICE_NAME": "massmailer-ingest"},
                    logs / "ingest.log",
                ),
            )
        ]
        for queue in spec.QUEUES:
            count = max(1, min(queue.max_concurrency, cfg.environments.get(queue.key, 1)))
            for index in range(count):
                args = [
                    "--function",
                    queue.consumer,
                    "--stage",
                    cfg.stage,
                    "--queue",
                    queue.key,
                    "--queue-url",
                    self.resources["queues"][queue.key],
                    "--long-poll",
                    str(cfg.long_poll_seconds),
                ]
                if cfg.failed_visibility is not None:
                    args += ["--failed-visibility", str(cfg.failed_visibility)]
                name = f"{queue.consumer}-{queue.key}-{index}"
                plan.append(
                    _Environment(
                        queue.consumer,
                        queue.key,
                        index,
                        Child(
                            name,
                            "local.function_process",
                            args,
                            {**env, "POWERTOOLS_SERVICE_NAME": f"massmailer-{queue.consumer}"},
                            logs / f"{name}.log",
                            nice=cfg.nice.get(queue.key, 0),
                        ),
                    )
                )
        return plan

    def _supervise(self) -> None:
        while not self._stopping.wait(1.0):
            dead = [m for m in (self.moto, self.moto_dynamodb) if m is not None and not m.alive]
            if dead:
                self.failure = f"{dead[0].name} exited; see {dead[0].log_path}"
                logger.error(self.failure)
                return
            for environment in self.environments:
                if environment.child.alive or self._stopping.is_set():
                    continue
                code = environment.child.process.returncode if environment.child.process else None
                environment.restarts += 1
                logger.warning(
                    "environment %s exited (%s); starting a fresh one (restart %d)",
                    environment.child.name,
                    code,
                    environment.restarts,
                )
                environment.child.close()
                try:
                    environment.child.start(wait=True, timeout=60)
                except Exception:
                    logger.exception("could not restart %s", environment.child.name)

    # -- what the demo, the tests and the control routes read -----------------------------------
    def api(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 30
    ) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(  # noqa: S310 - loopback URL we built
            self.api_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def depth(self, key: str, dlq: bool = False) -> int:
        url = self.resources["dlqs" if dlq else "queues"][key]
        return queue_depth(self.client("sqs"), url)

    def depths(self) -> dict[str, int]:
        result = {q.key: self.depth(q.key) for q in spec.QUEUES}
        result.update({f"{q.key}-dlq": self.depth(q.key, dlq=True) for q in spec.QUEUES})
        return result

    def ses_record(self) -> list[dict[str, Any]]:
        """What moto's SES recorded as sent (id, source, destinations)."""
        with urllib.request.urlopen(f"{self.aws_url}/_local/ses/sent", timeout=30) as response:  # noqa: S310
            return list(json.loads(response.read())["sent"])

    def outbox(self) -> list[Path]:
        return sorted(self.config.outbox_dir.glob("*.eml"))

    def set_faults(
        self, *, smtp: str | None | object = ..., scheduler: str | None | object = ..., **ses: Any
    ) -> dict[str, Any]:
        """Fault switches: ``mode`` (ok/down/throttle/paused), ``delay_ms``, ``rate`` for SES; ``smtp``
        (None/"throttle"/"down") for the relay; ``scheduler`` (None/"double") for the scheduler loop."""
        assert self.ses is not None and self.relay is not None
        if scheduler is not ...:
            fault = parse_fault(scheduler)  # a wrong value is a ValueError (400) before anything changes
            assert self.scheduler is not None
            self.scheduler.fault = fault
            logger.warning("scheduler fault now %s", fault)
        if ses:
            self.ses.set_faults(**ses)
        if smtp is not ...:
            self.relay.fault = smtp  # type: ignore[assignment]
            logger.warning("SMTP relay fault now %s", smtp)
        return self.faults()

    def reset_faults(self) -> dict[str, Any]:
        assert self.ses is not None and self.relay is not None
        self.ses.reset_faults()
        self.relay.fault = None
        if self.scheduler is not None:
            self.scheduler.fault = None
        return self.faults()

    def faults(self) -> dict[str, Any]:
        assert self.ses is not None and self.relay is not None
        return {
            "ses": asdict(self.ses.faults),
            "smtp": self.relay.fault,
            "scheduler": self.scheduler.fault if self.scheduler is not None else None,
        }

    def status(self) -> dict[str, Any]:
        assert self.ses is not None and self.relay is not None
        return {
            "endpoints": self.endpoints(),
            "uptime_seconds": round(time.monotonic() - self.started_at, 1),
            "faults": self.faults(),
            "ses": self.ses.snapshot(),
            "smtp": {"received": self.relay.handler.received, "refused": self.relay.handler.refused},
            "queues": self.depths(),
            "environments": {e.child.name: {"alive": e.child.alive, "restarts": e.restarts} for e in self.environments},
            "schedules_fired": len(self.scheduler.history) if self.scheduler else 0,
        }

    def _control(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, dict] | None:
        if path == "/_local/status" and method == "GET":
            return 200, self.status()
        if path == "/_local/schedules" and method == "GET":
            return 200, {"fired": self.scheduler.fired() if self.scheduler else []}
        if path != "/_local/faults":
            return None
        if method == "GET":
            return 200, self.faults()
        if method == "DELETE":
            return 200, self.reset_faults()
        if method not in ("POST", "PUT"):
            return 405, {"message": "use GET, POST or DELETE"}
        values: dict[str, Any] = dict(query)
        if body.strip():
            values.update(json.loads(body))
        ses = values.pop("ses", None)
        if isinstance(ses, dict):
            values.update(ses)
        elif isinstance(ses, str):
            values["mode"] = ses
        smtp = values.pop("smtp", ...)
        if smtp in ("", "ok", "none", "null"):
            smtp = None
        scheduler = values.pop("scheduler", ...)
        return 200, self.set_faults(smtp=smtp, scheduler=scheduler, **values)

    # -- stop -----------------------------------------------------------------------------------
    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=90)  # it may be starting a fresh environment: let it finish first
        if self.scheduler is not None:
            self.scheduler.stop()
        stop_all([e.child for e in self.environments], grace=6.0)
        if self.ses is not None:
            self.ses.stop()
        if self.relay is not None:
            self.relay.stop()
        stop_all([m for m in (self.moto, self.moto_dynamodb) if m is not None], grace=5.0)
        if self.config.write_state_file:
            try:
                state = json.loads(self.config.state_file.read_text())
                if state.get("pid") == os.getpid():
                    self.config.state_file.unlink()
            except (OSError, ValueError):
                pass
        logger.info("runtime stopped")
        if self._log_handler is not None:
            logging.getLogger("local").removeHandler(self._log_handler)
            self._log_handler.close()

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

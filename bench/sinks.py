"""SMTP sinks on loopback: Postfix's ``smtp-sink`` (with ``smtp-source`` as the reference client), or
``local.smtp_relay.SmtpRelay`` (aiosmtpd) when Postfix's test tools cannot be had.

Only processes started here are stopped here, by their own pid.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.smtp_relay import SmtpRelay, free_port

_SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/lib/postfix/sbin")


def postfix_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN:
        candidate = Path(directory) / name
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _wait_listening(host: str, port: int, timeout: float = 60.0) -> None:
    """Until the sink answers with its greeting (a hang guard: a loaded machine may take seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.recv(512)  # the 220 greeting
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise OSError(f"no SMTP greeting from {host}:{port} within {timeout:.0f} s: {exc}") from exc
            time.sleep(0.02)


def _proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process from /proc (Linux), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@dataclass
class Sink:
    """A running SMTP sink: ``kind`` is ``smtp-sink`` or ``aiosmtpd``."""

    kind: str
    host: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    relay: SmtpRelay | None = None
    command: list[str] = field(default_factory=list)

    def cpu_seconds(self) -> float | None:
        return _proc_cpu_seconds(self.process.pid) if self.process else None

    def pin(self, cpus: set[int] | None) -> None:
        """Pin the sink process to ``cpus`` (None: every CPU this process may use). aiosmtpd runs in
        this process's thread and is left alone."""
        if self.process is None or not hasattr(os, "sched_setaffinity"):
            return
        try:
            os.sched_setaffinity(self.process.pid, cpus or os.sched_getaffinity(0))
        except OSError:
            pass

    def received(self) -> int | None:
        """Messages received (aiosmtpd only: smtp-sink keeps no count unless asked to print it)."""
        return len(self.relay.messages) if self.relay else None

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
            self.process = None
        if self.relay is not None:
            self.relay.stop()
            self.relay = None

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sink(prefer: str = "auto", host: str = "127.0.0.1") -> Sink:
    """Start ``smtp-sink`` when available (``prefer`` = ``auto`` | ``smtp-sink`` | ``aiosmtpd``)."""
    binary = postfix_tool("smtp-sink") if prefer in ("auto", "smtp-sink") else None
    if prefer == "smtp-sink" and binary is None:
        raise FileNotFoundError("smtp-sink is not installed (Debian package 'postfix')")
    port = free_port()
    if binary:
        command = [binary]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]  # smtp-sink refuses to run as root without dropping privileges
        command += ["-h", "sink.bench.test", f"{host}:{port}", "1024"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_listening(host, port)
        except OSError as exc:
            process.terminate()
            _, err = process.communicate(timeout=5)
            raise RuntimeError(f"smtp-sink did not start: {err.decode(errors='replace')}") from exc
        return Sink(kind="smtp-sink", host=host, port=port, process=process, command=command)
    relay = SmtpRelay(outbox=None, port=port).start()
    _wait_listening(host, port)
    return Sink(kind="aiosmtpd", host=host, port=port, relay=relay)


def smtp_source(
    sink: Sink, *, messages: int, sessions: int, size: int, timeout: float = 600.0, cpus: set[int] | None = None
) -> dict[str, Any] | None:
    """Run Postfix's ``smtp-source`` into ``sink``: ``sessions`` parallel sessions, each reusing its
    connection (``-d``), ``messages`` in all of ``size`` bytes. Returns wall seconds, or None when
    smtp-source is not installed."""
    binary = postfix_tool("smtp-source")
    if binary is None:
        return None
    command = [
        binary,
        "-s",
        str(sessions),
        "-d",  # don't disconnect after each message: reuse the session, as our provider does
        "-m",
        str(messages),
        "-l",
        str(size),
        "-f",
        "news@massmailer.test",
        "-t",
        "reader@example.com",
        "-M",
        "source.bench.test",
        f"{sink.host}:{sink.port}",
    ]
    sink.pin(cpus)
    sink_cpu0 = sink.cpu_seconds()
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, timeout=timeout, check=False, preexec_fn=pin)  # noqa: S603
    wall = time.perf_counter() - started
    sink_cpu1 = sink.cpu_seconds()
    sink.pin(None)
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source failed ({done.returncode}): {done.stderr.decode(errors='replace')[-500:]}")
    return {
        "wall": wall,
        "rate": messages / wall,
        "sink_cpu": (sink_cpu1 - sink_cpu0) if sink_cpu0 is not None and sink_cpu1 is not None else None,
        "command": " ".join(command),
    }


def postfix_tools_status() -> tuple[bool, str]:
    """Whether smtp-sink and smtp-source are present (``make bench`` installs them with apt-get)."""
    sink, source = postfix_tool("smtp-sink"), postfix_tool("smtp-source")
    if sink and source:
        return True, f"{sink}, {source}"
    return False, (
        "Postfix's smtp-sink/smtp-source are not installed (Debian package 'postfix'; `make bench` installs it "
        "with apt-get when run as root): the sink is aiosmtpd and the smtp-source reference is unavailable"
    )

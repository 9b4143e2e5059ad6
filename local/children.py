"""Child processes of the local runtime: started by the runtime, stopped by it, never orphaned.

Every child runs :func:`watch_parent`: if the runtime dies without stopping it (``kill -9``, a crashed
test worker), the child notices that its parent changed and exits within a second. Children ignore
SIGINT — Ctrl-C in the terminal reaches the whole process group, and the runtime, not each child,
decides the order of shutdown — and stop on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
READY = "READY"  # the line a child prints on stdout once it listens / polls: "READY <detail>"


def watch_parent(on_orphaned: Callable[[], None] | None = None, interval: float = 0.5) -> None:
    """Exit when the parent process goes away (the runtime was killed without stopping us)."""
    parent = os.getppid()

    def _watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                if on_orphaned is not None:
                    try:
                        on_orphaned()
                    except Exception:  # noqa: S110 - exiting anyway
                        pass
                os._exit(3)

    threading.Thread(target=_watch, name="watch-parent", daemon=True).start()


def install_stop_signals(stop: Callable[[], None]) -> None:
    """SIGTERM stops the child; SIGINT (Ctrl-C to the process group) is left to the runtime."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop())


def announce_ready(detail: str) -> None:
    print(f"{READY} {detail}", flush=True)


class Child:
    """A ``python -m <module>`` child whose stdout/stderr go to a log file (its "log stream").

    ``start`` waits for the child's ``READY <detail>`` line and returns the detail (e.g. its port).
    """

    def __init__(
        self, name: str, module: str, args: list[str], env: Mapping[str, str], log_path: Path, nice: int = 0
    ) -> None:
        self.name = name
        self.module = module
        self.args = args
        self.env = dict(env)
        self.log_path = log_path
        self.nice = nice  # added to the child's niceness (lower CPU priority), 0: as the runtime's
        self.process: subprocess.Popen[bytes] | None = None
        self.detail = ""
        self._log: IO[bytes] | None = None

    def start(self, wait: bool = True, timeout: float = 60.0) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-u", "-m", self.module, *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
        )
        if self.nice:
            try:
                os.setpriority(os.PRIO_PROCESS, self.process.pid, os.getpriority(os.PRIO_PROCESS, 0) + self.nice)
            except (OSError, AttributeError):  # not permitted, or not POSIX: run at the runtime's priority
                pass
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> str:
        """Read stdout until the READY line, then copy the rest of stdout into the log in a thread."""
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + timeout
        stdout = self.process.stdout
        result: dict[str, str] = {}

        def _read() -> None:
            for raw in iter(stdout.readline, b""):
                line = raw.decode("utf-8", "replace")
                if "detail" not in result and line.startswith(READY):
                    result["detail"] = line[len(READY) :].strip()
                    continue
                if self._log is not None and not self._log.closed:
                    try:
                        self._log.write(raw)
                        self._log.flush()
                    except ValueError:
                        return

        threading.Thread(target=_read, name=f"log-{self.name}", daemon=True).start()
        while "detail" not in result:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start within {timeout:.0f} s; see {self.log_path}")
            time.sleep(0.02)
        self.detail = result["detail"]
        return self.detail

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        if self.alive:
            assert self.process is not None
            try:
                self.process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(timeout=max(timeout, 0.01))
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=5)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()


def stop_all(children: list[Child], grace: float = 5.0) -> None:
    """SIGTERM everyone, wait up to ``grace`` seconds in total, then SIGKILL the stragglers."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        if not child.wait(deadline - time.monotonic()):
            child.kill()
    for child in children:
        child.close()

"""Running workers and talking to them, the way an operator would: `dunning worker` in a
subprocess, records through the codec to the broker, state over HTTP."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from audit.cli import register
from config.settings import Settings
from config.worker_env import worker_env
from topics.broker import EmbeddedBroker, free_port
from topics.clients import publish, read_all
from topics.provision import apply_topics


def make_settings(broker: EmbeddedBroker, name: str, state_dir: Path, **kw: Any) -> Settings:
    return Settings(
        embedded_port=broker.port, app_id=f"dunning-{name}", partitions=kw.pop("partitions", 4),
        topic_prefix=f"t{name}.", state_dir=state_dir, web_port=free_port(), **kw,
    )


def env_for(settings: Settings) -> dict[str, str]:
    """A worker's environment with every setting the tests vary (auto-approval, run batch)."""
    return worker_env(settings, with_auto_approve=True, DUNNING_RUN_BATCH=str(settings.run_batch))


@dataclass
class Worker:
    settings: Settings
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    starts: int = field(default=0)

    def start(self, timeout: float = 90.0) -> Worker:
        self.starts += 1
        name = f"worker-{self.settings.web_port}-{self.starts}.log"
        self.log_path = self.settings.state_dir / name
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dunning", "worker"], env=env_for(self.settings),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.log()}")
            try:
                if self.get("/health/")["ready"]:
                    return self
            except (OSError, urllib.error.HTTPError, ValueError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"worker not ready in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path else ""

    def get(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.settings.web_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())

    def text(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.settings.web_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the worker's Prometheus metrics (0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.text("/metrics/").splitlines():
            head, _, value = line.rpartition(" ")
            if head == (f"{name}{{{want}}}" if want else name):
                return float(value)
        return 0.0

    def account(self, account_id: str) -> dict[str, Any] | None:
        try:
            return self.get(f"/accounts/{account_id}/")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def provision(settings: Settings) -> None:
    asyncio.run(apply_topics(settings))


def send(settings: Settings, topic: str, records: list[tuple[str, dict[str, Any]]]) -> None:
    asyncio.run(publish(settings, topic, records))


def read(settings: Settings, topic: str, idle: float = 0.5) -> list[Any]:
    return asyncio.run(read_all(settings, topic, idle_timeout=idle))


def dig(value: Any, *path: Any) -> Any:
    """`value[p0][p1]...`, or None as soon as a step is missing (None, an absent key, an
    index out of range): for predicates over state that may not exist yet, e.g.
    `dig(worker.account(acc), "items", "X-a", "open_amount") == "70.00"`."""
    for step in path:
        if value is None:
            return None
        try:
            value = value[step]
        except (KeyError, IndexError):
            return None
    return value


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition",
             explain: Any = None) -> Any:
    """Call `predicate` until it returns something truthy, and return that.

    "Not yet" is a falsy value. A predicate over state that may not exist yet must check
    for it (`dig`, `.get`, `x and ...`): an exception is not "not yet", it fails the test at
    once, so a predicate that is wrong does not hide as a timeout. `explain()`, if given,
    says more on a timeout (what is still missing, the worker's log)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)
    more = f"\n{explain()}" if explain is not None else ""
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}{more}")


__all__ = ["Worker", "dig", "make_settings", "provision", "send", "read", "wait_for", "replace"]


def audit_cli(monkeypatch: Any, capsys: Any, settings: Settings,
              *argv: str) -> tuple[int, str, str]:
    """`dunning audit ...` in this process, with the environment of `settings`: the exit
    code, stdout and stderr."""
    for name, value in env_for(settings).items():
        if name.startswith("DUNNING_"):
            monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser(prog="dunning")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["audit", *argv])
    capsys.readouterr()
    code = int(args.func(args) or 0)
    out, err = capsys.readouterr()
    return code, out, err

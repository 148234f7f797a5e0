"""Test hosts: Debian bookworm systemd-nspawn containers with systemd as PID 1.

The debootstrap root is built once per machine (``cfg.rootfs_cache``, built in
a temporary directory and renamed into place). Every start of a host copies it
afresh to ``<state>/hosts/<name>/rootfs``, so a host always boots as a clean
"EC2 instance": hostname, ``ec2-user`` with key login and passwordless sudo,
sshd on ``127.0.0.1:<port>`` only, no password authentication, the host's CA
bundle. The containers share the host's network (no veth), so a guest reaches
LocalStack and osmem-server on 127.0.0.1 as well.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

from .config import HOST_USER, Config
from .procs import Managed, SandboxError, alive, wait_for
from .services import port_in_use

log = logging.getLogger(__name__)

DEBOOTSTRAP_INCLUDE = (
    "systemd,systemd-sysv,dbus,openssh-server,python3,python3-venv,iproute2,sudo,procps"
)
APT_PACKAGES = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container"}
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
ROOTFS_STAMP = ".filesearch-ops-rootfs"
SSH_OPTS = [
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=3",
]
# Units that cannot work in a container sharing the host's network and kernel.
MASKED_UNITS = (
    "systemd-networkd-wait-online.service",
    "systemd-timesyncd.service",
    "e2scrub_reap.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
)


def ensure_apt_packages() -> None:
    """Install debootstrap and systemd-container with apt-get when missing."""
    missing = sorted({pkg for tool, pkg in APT_PACKAGES.items() if not shutil.which(tool)})
    if not missing:
        return
    if os.geteuid() != 0:
        raise SandboxError(
            f"the test hosts need {', '.join(missing)}: apt-get install them as root"
        )
    print(f"sandbox: installing {' '.join(missing)} with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def ensure_rootfs(cfg: Config) -> Path:
    """The cached debootstrap root; built once (~1 min), atomically, under a lock."""
    root = cfg.rootfs_cache
    if (root / ROOTFS_STAMP).exists():
        return root
    ensure_apt_packages()
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f".{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / ROOTFS_STAMP).exists():
            return root
        if root.exists():  # unstamped leftover of an interrupted rename: not trusted
            shutil.rmtree(root)
        tmp = Path(tempfile.mkdtemp(prefix=f"{root.name}.tmp.", dir=root.parent))
        print(f"sandbox: building the bookworm root once in {root} (about a minute)", flush=True)
        try:
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={DEBOOTSTRAP_INCLUDE}",
                    "bookworm",
                    str(tmp / "root"),
                    cfg.debian_mirror,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            (tmp / "root" / "var" / "cache" / "apt" / "archives").mkdir(parents=True, exist_ok=True)
            subprocess.run(["chroot", str(tmp / "root"), "apt-get", "clean"], check=True)
            (tmp / "root" / ROOTFS_STAMP).write_text("debootstrap bookworm minbase\n")
            (tmp / "root").rename(root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def ensure_ssh_key(cfg: Config) -> Path:
    key = cfg.ssh_key
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "filesearch-ops-sandbox",
                "-f",
                str(key),
            ],
            check=True,
        )
    return key


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix.rstrip("/") or point.startswith(prefix):
            mounts.append(point)
    return sorted(mounts, key=len, reverse=True)


def _release_mounts(path: Path) -> None:
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False)
    left = _mounts_under(path)
    if left:
        raise SandboxError(f"mounts left under {path}: {left}")


class Host:
    """One nspawn test host: its directory, its process, its ssh port."""

    def __init__(self, cfg: Config, name: str, port: int | None = None) -> None:
        if not NAME_RE.match(name):
            raise SandboxError(f"host name {name!r}: use lowercase letters, digits and '-'")
        self.cfg = cfg
        self.name = name
        self.dir = cfg.hosts_dir / name
        self.rootfs = self.dir / "rootfs"
        self.proc = Managed(f"host-{name}", cfg.run_dir)
        self.pidns_file = cfg.run_dir / f"host-{name}.pidns"
        self._port = port

    @property
    def port(self) -> int:
        if self._port is not None:
            return self._port
        with contextlib.suppress(OSError, ValueError):
            return int((self.dir / "port").read_text())
        if self.name in self.cfg.worker_names():
            return self.cfg.worker_port(self.name)
        raise SandboxError(f"host {self.name}: no ssh port known (use --ssh-port)")

    # --- state ---------------------------------------------------------
    def ssh(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "ssh",
                *SSH_OPTS,
                "-i",
                str(self.cfg.ssh_key),
                "-p",
                str(self.port),
                f"{HOST_USER}@127.0.0.1",
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ssh_ok(self) -> bool:
        try:
            return self.ssh("true", timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def running(self) -> bool:
        return self.proc.pid() is not None and self.ssh_ok()

    # --- start -----------------------------------------------------------
    def start(self) -> str:
        if self.proc.pid() is not None:
            wait_for(f"host {self.name} ssh", self.ssh_ok, 60, self.proc)
            return f"host {self.name} already running (pid {self.proc.pid()}, ssh {self.port})"
        if port_in_use(self.port):
            raise SandboxError(
                f"host {self.name}: 127.0.0.1:{self.port} is taken by a process this sandbox did "
                "not start; choose another port (SANDBOX_SSH_PORT_BASE / --ssh-port)"
            )
        ensure_apt_packages()
        base = ensure_rootfs(self.cfg)
        ensure_ssh_key(self.cfg)
        self._stop_leftovers()
        self._fresh_copy(base)
        self._configure()
        pid = self.proc.start(
            [
                "systemd-nspawn",
                "-b",
                "-D",
                str(self.rootfs),
                "-M",
                self.name,
                "--register=no",
                "--keep-unit",
                "--console=passive",
            ],
            {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_SOCKET")},
        )
        wait_for(f"host {self.name} ssh on 127.0.0.1:{self.port}", self.ssh_ok, 90, self.proc)
        self._record_pidns(pid)
        return f"host {self.name} started (pid {pid}, ssh 127.0.0.1:{self.port})"

    def _fresh_copy(self, base: Path) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.rootfs.exists():
            _release_mounts(self.rootfs)
            shutil.rmtree(self.rootfs)
        subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(self.rootfs)], check=True)
        (self.dir / "port").write_text(f"{self.port}\n")

    def _configure(self) -> None:
        root = self.rootfs
        (root / "etc/hostname").write_text(f"{self.name}\n")
        (root / "etc/hosts").write_text(
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.name}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
        )
        (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        # the host's CA bundle, so pip and TLS inside the guest trust what the host trusts
        certs = root / "etc/ssl/certs"
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", certs / "ca-certificates.crt")
        chroot = ["chroot", str(root)]
        subprocess.run(
            [*chroot, "useradd", "-m", "-s", "/bin/bash", "-G", "sudo", HOST_USER], check=True
        )
        sudoers = root / "etc/sudoers.d/90-ec2-user"
        sudoers.write_text(f"{HOST_USER} ALL=(ALL) NOPASSWD:ALL\n")
        sudoers.chmod(0o440)
        ssh_dir = root / "home" / HOST_USER / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(Path(f"{self.cfg.ssh_key}.pub").read_text())
        (ssh_dir / "authorized_keys").chmod(0o600)
        subprocess.run(
            [*chroot, "chown", "-R", f"{HOST_USER}:{HOST_USER}", f"/home/{HOST_USER}/.ssh"],
            check=True,
        )
        (root / "etc/ssh/sshd_config.d/sandbox.conf").write_text(
            "# filesearch-ops sandbox test host\n"
            f"ListenAddress 127.0.0.1\nPort {self.port}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin no\nUseDNS no\n"
        )
        for key in (root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        subprocess.run([*chroot, "ssh-keygen", "-A"], check=True, stdout=subprocess.DEVNULL)
        for unit in MASKED_UNITS:
            link = root / "etc/systemd/system" / unit
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/null")

    def _record_pidns(self, nspawn_pid: int) -> None:
        """Remember the guest's pid namespace so `stop` can prove it is empty."""
        own = str(Path("/proc/self/ns/pid").readlink())
        for child in _descendants(nspawn_pid):
            with contextlib.suppress(OSError):
                ns = str(Path(f"/proc/{child}/ns/pid").readlink())
                if ns != own:
                    self.pidns_file.write_text(ns + "\n")
                    return

    # --- stop ------------------------------------------------------------
    def stop(self) -> bool:
        stopped = self.proc.stop(timeout=30, group=False)
        self._stop_leftovers()
        return stopped

    def _stop_leftovers(self) -> None:
        """KILL any process left in the guest's pid namespace; drop mounts and veths."""
        with contextlib.suppress(OSError):
            ns = self.pidns_file.read_text().strip()
            pids = [p for p in _all_pids() if _pidns(p) == ns]
            for pid in pids:
                log.warning("host %s: killing leftover pid %d", self.name, pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            wait_for(f"host {self.name} leftovers", lambda: not any(alive(p) for p in pids), 10)
            self.pidns_file.unlink()
        if self.rootfs.exists():
            _release_mounts(self.rootfs)
        veth = f"ve-{self.name}"[:15]
        if Path(f"/sys/class/net/{veth}").exists():
            subprocess.run(["ip", "link", "delete", veth], check=False)

    def remove(self) -> None:
        """Stop and delete the host's directory."""
        self.stop()
        if self.dir.exists():
            _release_mounts(self.dir)
            shutil.rmtree(self.dir)


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _pidns(pid: int) -> str | None:
    try:
        return str(Path(f"/proc/{pid}/ns/pid").readlink())
    except OSError:
        return None


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for pid in _all_pids():
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            parents[pid] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, frontier = [], [root]
    while frontier:
        cur = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == cur]
        found += kids
        frontier += kids
    return found


def known_hosts(cfg: Config) -> list[str]:
    """Every host that has a directory under the state dir (workers and molecule hosts)."""
    names = set(cfg.worker_names())
    if cfg.hosts_dir.is_dir():
        names |= {p.name for p in cfg.hosts_dir.iterdir() if p.is_dir()}
    return sorted(names)

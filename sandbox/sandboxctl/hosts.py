"""Test hosts: Debian bookworm systemd-nspawn containers with systemd as PID 1.

The debootstrap root is built once per machine (``cfg.rootfs_cache``, built in
a temporary directory and renamed into place) and given the settings every
host shares (``ec2-user`` with passwordless sudo, sshd without passwords,
masked units). It is never written to again: a host boots on an overlay of it,
mounted in a private mount namespace (``unshare --mount``) so no mount is ever
visible on, or left behind on, the machine. The overlay's upper layer
``<state>/hosts/<name>/upper`` is made afresh at every start with the host's
own files (hostname, machine-id, sshd port, ssh host keys, authorized key, the
controller's CA bundle), so a host always boots as a clean "EC2 instance" in
about a second. The containers share the host's network (no veth), so a guest
reaches LocalStack and osmem-server on 127.0.0.1 as well.
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
DEBOOTSTRAP_DONE = "debootstrap bookworm minbase"
BASE_CONFIG_VERSION = "base-config 1"  # bump when _configure_base changes
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


def _stamp(root: Path) -> list[str]:
    try:
        return (root / ROOTFS_STAMP).read_text().splitlines()
    except OSError:
        return []


def ensure_rootfs(cfg: Config) -> Path:
    """The cached root; built once (~1.5 min), atomically, under a lock."""
    root = cfg.rootfs_cache
    if _stamp(root) == [DEBOOTSTRAP_DONE, BASE_CONFIG_VERSION]:
        return root
    ensure_apt_packages()
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f".{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = _stamp(root)
        if stamp == [DEBOOTSTRAP_DONE, BASE_CONFIG_VERSION]:
            return root
        if stamp[:1] == [DEBOOTSTRAP_DONE]:  # only the shared settings changed
            _configure_base(root)
            (root / ROOTFS_STAMP).write_text(f"{DEBOOTSTRAP_DONE}\n{BASE_CONFIG_VERSION}\n")
            return root
        if root.exists():  # unstamped leftover of an interrupted build: not trusted
            shutil.rmtree(root)
        tmp = Path(tempfile.mkdtemp(prefix=f"{root.name}.tmp.", dir=root.parent))
        print(f"sandbox: building the bookworm root once in {root} (1-2 minutes)", flush=True)
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
            subprocess.run(["chroot", str(tmp / "root"), "apt-get", "clean"], check=True)
            _configure_base(tmp / "root")
            (tmp / "root" / ROOTFS_STAMP).write_text(f"{DEBOOTSTRAP_DONE}\n{BASE_CONFIG_VERSION}\n")
            (tmp / "root").rename(root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _configure_base(root: Path) -> None:
    """Settings every host shares (idempotent): the EC2 user, sudo, sshd, masked units."""
    chroot = ["chroot", str(root)]
    if f"\n{HOST_USER}:" not in "\n" + (root / "etc/passwd").read_text():
        subprocess.run(
            [*chroot, "useradd", "-m", "-s", "/bin/bash", "-G", "sudo", HOST_USER], check=True
        )
    sudoers = root / "etc/sudoers.d/90-ec2-user"
    sudoers.write_text(f"{HOST_USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    ssh_dir = root / "home" / HOST_USER / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(
        [*chroot, "chown", f"{HOST_USER}:{HOST_USER}", f"/home/{HOST_USER}/.ssh"], check=True
    )
    (root / "etc/ssh/sshd_config.d/50-sandbox.conf").write_text(
        "# filesearch-ops sandbox test hosts: keys only (ListenAddress/Port: 10-host.conf)\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin no\nUseDNS no\n"
    )
    for key in (root / "etc/ssh").glob("ssh_host_*"):  # every host gets its own
        key.unlink()
    (root / "etc/machine-id").write_text("")  # every host gets its own
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")


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


def prepare_hosts(cfg: Config) -> None:
    """Everything a host start needs once: apt packages, the cached root, the key pair."""
    ensure_apt_packages()
    ensure_rootfs(cfg)
    ensure_ssh_key(cfg)


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
        self.upper = self.dir / "upper"  # the host's own layer over the cached root
        self.work = self.dir / "work"  # overlayfs' work dir (same file system as upper)
        self.merged = self.dir / "root"  # mount point, only inside the private namespace
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
        """Boot the host (fresh copy of the root) unless it runs; wait for ssh."""
        return self.launch() or self.wait_ready()

    def launch(self) -> str | None:
        """Start booting; None when booting began, a message when it already runs."""
        if self.proc.pid() is not None:
            return self.wait_ready(started=False)
        if port_in_use(self.port):
            raise SandboxError(
                f"host {self.name}: 127.0.0.1:{self.port} is taken by a process this sandbox did "
                "not start; choose another port (SANDBOX_SSH_PORT_BASE / --ssh-port)"
            )
        ensure_apt_packages()
        base = ensure_rootfs(self.cfg)
        ensure_ssh_key(self.cfg)
        self._stop_leftovers()
        self._fresh_layer(base)
        # the overlay exists only in this private mount namespace; `exec` keeps the pid,
        # so the pid file names systemd-nspawn itself
        overlay = f"lowerdir={base},upperdir={self.upper},workdir={self.work}"
        script = (
            'mount -t overlay overlay -o "$1" "$2" && exec systemd-nspawn -b -D "$2" -M "$3" '
            "--register=no --keep-unit --console=passive"
        )
        self.proc.start(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
                overlay,
                str(self.merged),
                self.name,
            ],
            {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_SOCKET")},
        )
        return None

    def wait_ready(self, started: bool = True) -> str:
        """Poll until ssh answers (recording the guest's pid namespace on the way)."""
        pid = self.proc.pid()

        def ready() -> bool:
            if pid is not None and not self.pidns_file.exists():
                self._record_pidns(pid)
            return self.ssh_ok()

        wait_for(f"host {self.name} ssh on 127.0.0.1:{self.port}", ready, 180, self.proc, 0.5)
        verb = "started" if started else "already running"
        return f"host {self.name} {verb} (pid {pid}, ssh 127.0.0.1:{self.port})"

    def _fresh_layer(self, base: Path) -> None:
        """A new, empty upper layer holding only this host's own files."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for path in (self.upper, self.work, self.merged):
            if path.exists():
                _release_mounts(path)
                shutil.rmtree(path)
            path.mkdir()
        (self.dir / "port").write_text(f"{self.port}\n")
        layer = _Layer(base, self.upper)
        layer.write("etc/hostname", f"{self.name}\n")
        layer.write(
            "etc/hosts",
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.name}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n",
        )
        layer.write("etc/machine-id", uuid.uuid4().hex + "\n", mode=0o444)
        # the controller's CA bundle, so pip and TLS in the guest trust what it trusts
        layer.write(
            "etc/ssl/certs/ca-certificates.crt",
            Path("/etc/ssl/certs/ca-certificates.crt").read_text(),
        )
        layer.write(
            "etc/ssh/sshd_config.d/10-host.conf",
            f"# sandbox host {self.name}\nListenAddress 127.0.0.1\nPort {self.port}\n",
        )
        layer.write(
            f"home/{HOST_USER}/.ssh/authorized_keys",
            Path(f"{self.cfg.ssh_key}.pub").read_text(),
            mode=0o600,
            owner=f"home/{HOST_USER}",
        )
        subprocess.run(
            ["ssh-keygen", "-A", "-f", str(self.upper)], check=True, stdout=subprocess.DEVNULL
        )

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
        if self.dir.exists():
            _release_mounts(self.dir)
        veth = f"ve-{self.name}"[:15]
        if Path(f"/sys/class/net/{veth}").exists():
            subprocess.run(["ip", "link", "delete", veth], check=False)

    def remove(self) -> None:
        """Stop and delete the host's directory."""
        self.stop()
        if self.dir.exists():
            _release_mounts(self.dir)
            shutil.rmtree(self.dir)


class _Layer:
    """Writes files into an overlay upper layer, its directories mirroring the lower's."""

    def __init__(self, lower: Path, upper: Path) -> None:
        self.lower = lower
        self.upper = upper

    def _mkdirs(self, rel: Path) -> None:
        for depth in range(1, len(rel.parts) + 1):
            part = Path(*rel.parts[:depth])
            target = self.upper / part
            if target.exists():
                continue
            target.mkdir()
            st = (self.lower / part).stat()  # an upper dir's owner and mode win: copy them
            os.chown(target, st.st_uid, st.st_gid)
            target.chmod(st.st_mode & 0o7777)

    def write(self, rel: str, text: str, mode: int = 0o644, owner: str | None = None) -> None:
        """Write ``rel``; ``owner`` names a lower path whose uid/gid the file takes."""
        path = Path(rel)
        self._mkdirs(path.parent)
        target = self.upper / path
        target.write_text(text)
        target.chmod(mode)
        if owner is not None:
            st = (self.lower / owner).stat()
            os.chown(target, st.st_uid, st.st_gid)


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

"""The nspawn test hosts: reachable with Ansible over ssh, systemd healthy, EC2-like."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # conftest is pytest's; import it for types only
    from conftest import Sandbox, SandboxHost

pytestmark = [pytest.mark.sandbox, pytest.mark.hosts]

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
WORKERS = ["worker1", "worker2"]
# Units the sandbox itself relies on in a host; none of them may fail.
SANDBOX_UNITS = {
    "ssh.service",
    "dbus.service",
    "systemd-journald.service",
    "systemd-logind.service",
    "systemd-user-sessions.service",
}


def ssh(sandbox: Sandbox, host: SandboxHost, command: str) -> subprocess.CompletedProcess[str]:
    """``command`` as ec2-user (no sudo: the tests check sudo itself)."""
    return sandbox.ssh(host.name, command, sudo=False, timeout=120)


@pytest.fixture(scope="module")
def inventory(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """inventories/local for the default sandbox; a generated one for a private sandbox."""
    if sandbox.state_dir == REPO / ".sandbox":
        return REPO / "inventories" / "local"
    return sandbox.write_inventory(tmp_path_factory.mktemp("inv") / "hosts.yml")


def test_sandbox_has_both_workers(sandbox: Sandbox) -> None:
    assert sorted(sandbox.hosts) == WORKERS, "these tests need SANDBOX_HOSTS=2 (the default)"


def test_ansible_ping_reaches_every_host(sandbox: Sandbox, inventory: Path) -> None:
    done = subprocess.run(
        [str(VENV_BIN / "ansible"), "workers", "-i", str(inventory), "-m", "ansible.builtin.ping"],
        cwd=REPO,
        env={**sandbox.env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in sandbox.hosts:
        assert f"{name} | SUCCESS" in done.stdout, done.stdout


@pytest.mark.parametrize("name", WORKERS)
def test_systemd_is_running_without_failed_sandbox_units(sandbox: Sandbox, name: str) -> None:
    host = sandbox.hosts[name]
    state = ssh(sandbox, host, "systemctl is-system-running --wait")
    failed = ssh(sandbox, host, "systemctl list-units --failed --plain --no-legend")
    failed_units = {line.split()[0] for line in failed.stdout.splitlines() if line.strip()}
    assert state.stdout.strip() in ("running", "degraded"), state.stdout + state.stderr
    assert failed_units.isdisjoint(SANDBOX_UNITS), failed.stdout
    assert ssh(sandbox, host, "cat /proc/1/comm").stdout.strip() == "systemd"


@pytest.mark.parametrize("name", WORKERS)
def test_host_is_ec2_like(sandbox: Sandbox, name: str) -> None:
    host = sandbox.hosts[name]
    done = ssh(
        sandbox,
        host,
        "hostname; id -un; sudo -n id -u; "
        "/usr/bin/python3 -c 'import venv, sys; print(sys.version_info[0])'",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [name, "ec2-user", "0", "3"]


@pytest.mark.parametrize("name", WORKERS)
def test_sshd_listens_on_loopback_only_and_refuses_passwords(sandbox: Sandbox, name: str) -> None:
    host = sandbox.hosts[name]
    config = ssh(sandbox, host, "sudo -n sshd -T")
    settings = dict(line.split(" ", 1) for line in config.stdout.splitlines() if " " in line)
    assert settings["listenaddress"] == f"127.0.0.1:{host.port}"
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["permitrootlogin"] == "no"


@pytest.mark.parametrize("name", WORKERS)
def test_host_reaches_the_emulators_on_loopback(sandbox: Sandbox, name: str) -> None:
    host = sandbox.hosts[name]
    probe = (
        "import json, urllib.request as u; "
        f"print(json.load(u.urlopen('{sandbox.opensearch_url}/'))['version']['number'] != '', "
        # an SQS ListQueues over the query protocol: any emulator answers it with XML
        f"b'<ListQueuesResponse' in u.urlopen('{sandbox.aws_endpoint}/?Action=ListQueues').read())"
    )
    done = ssh(sandbox, host, f'python3 -c "{probe}"')
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]

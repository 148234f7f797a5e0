"""The backlog playbooks act on a deployed fleet: worker1/worker2 running phased-worker.

On a fresh machine nothing is deployed yet, so the first test of this directory
runs ``playbooks/deploy.yml`` (the README's deploy, default inventory). Where the
hosts already run the same release, that is a no-change deploy.
"""

from __future__ import annotations

from typing import Any

import pytest
from backlog_it_helpers import run_playbook


@pytest.fixture(scope="session", autouse=True)
def deployed_fleet(sandbox: Any) -> None:
    """The worker deployed to every host of ``workers`` with playbooks/deploy.yml."""
    deploy = run_playbook("deploy.yml", sandbox.env, timeout=1800)
    assert deploy.rc == 0, f"deploy.yml failed (rc {deploy.rc}):\n{deploy.failures()}"

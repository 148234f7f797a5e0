"""Jinja filters of the project's playbooks, made from the worker package's own code.

``endpoint | opensearch_auth(auth, username)``: the OpenSearch authentication the
worker uses for ``endpoint`` (``filesearch_worker.config.resolve_opensearch_auth``,
the one ``auto`` rule). Loaded by Ansible from this directory, next to the
playbooks; it needs the worker package on the control node (``make venv``).
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

try:
    from filesearch_worker.config import resolve_opensearch_auth
except ImportError:  # reported when the filter is used
    resolve_opensearch_auth = None  # type: ignore[assignment]


def opensearch_auth(endpoint: Any, auth: Any = "auto", username: Any = "") -> str:
    """``sigv4``, ``basic`` or ``none``: ``auth`` with ``auto`` resolved for ``endpoint``."""
    if resolve_opensearch_auth is None:
        raise AnsibleFilterError(
            "opensearch_auth needs the filesearch_worker package on the control node "
            "(pip install -e files/worker, as `make venv` does)"
        )
    return resolve_opensearch_auth(
        str(auth or "auto"), str(endpoint or ""), username=str(username or "")
    )


class FilterModule:
    """The project's filters."""

    def filters(self) -> dict[str, Any]:
        return {"opensearch_auth": opensearch_auth}

"""Capacity advice (drain ETA, workers needed): the options and the plan, shared.

``sqs_queue_status`` and ``redis_queue_info`` give the same advice for either
queue backend (``filesearch_worker.queue_status.plan_capacity``); their
capacity options and the way a ``CapacityPlan`` is built from them live here
once. Imported as ``ansible.module_utils.filesearch_capacity``.
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import AnsibleModule


def capacity_argument_spec() -> dict[str, Any]:
    """The capacity-advice options (documented in each module)."""
    return {
        "capacity": {"type": "bool", "default": True},
        "rate_sample_seconds": {"type": "float", "default": 0},
        "rate_per_worker": {"type": "float"},
        "current_workers": {"type": "int"},
        "target_minutes": {"type": "float", "default": 10},
        "min_workers": {"type": "int", "default": 2},
        "max_workers": {"type": "int", "default": 20},
    }


def capacity_plan(module: AnsibleModule, rate_window_minutes: int = 0) -> Any:
    """The checked ``CapacityPlan`` of the module's options, or None when ``capacity`` is off.

    Needs the worker package (the caller checks it is there); an inconsistent
    plan fails the module with the engine's message.
    """
    from filesearch_worker.queue_status import CapacityPlan

    p = module.params
    if not p["capacity"]:
        return None
    plan = CapacityPlan(
        target_minutes=p["target_minutes"],
        min_workers=p["min_workers"],
        max_workers=p["max_workers"],
        rate_per_worker=p["rate_per_worker"],
        current_workers=p["current_workers"],
        rate_window_minutes=rate_window_minutes,
        rate_sample_seconds=p["rate_sample_seconds"],
    )
    try:
        plan.check()
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    return plan

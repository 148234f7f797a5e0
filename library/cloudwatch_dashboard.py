#!/usr/bin/python
# Copyright: filesearch-ops contributors
# Apache License 2.0 (see files/worker/pyproject.toml)
"""Ansible module cloudwatch_dashboard: create, update or delete a CloudWatch dashboard."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudwatch_dashboard
short_description: Create, update or delete a CloudWatch dashboard from a JSON body
description:
  - Puts a CloudWatch dashboard whose body is given as a dict or a JSON string, or deletes it.
  - The body is compared with the dashboard's current body after normalisation (parsed JSON,
    keys sorted), so C(changed) is true only when the dashboard really differs; the diff shows
    the change.
  - amazon.aws and community.aws have no module for dashboards; this one is built on amazon.aws's
    C(AnsibleAWSModule) (its common AWS options) and needs only boto3.
version_added: "1.0.0"
author:
  - filesearch-ops contributors
options:
  name:
    description: Dashboard name (letters, digits, C(-) and C(_), at most 255 characters).
    type: str
    required: true
  body:
    description:
      - The dashboard body (C(widgets), optional C(start), C(end), C(periodOverride) ...)
        as a dict or a JSON string.
      - Required when O(state=present).
    type: json
  state:
    description: Whether the dashboard should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    description: Reads the current dashboard and reports what would change without writing.
  diff_mode:
    support: full
    description: The normalised bodies before and after, as indented JSON.
requirements:
  - python >= 3.11
  - boto3
notes:
  - Needs C(cloudwatch:GetDashboard), C(cloudwatch:PutDashboard) and C(cloudwatch:DeleteDashboards).
"""

EXAMPLES = r"""
- name: Dashboard for the index queue and its DLQ
  cloudwatch_dashboard:
    name: cis-filesearch
    state: present
    body:
      widgets:
        - type: metric
          x: 0
          y: 0
          width: 12
          height: 6
          properties:
            title: Queue depth
            region: ap-northeast-1
            metrics:
              - [AWS/SQS, ApproximateNumberOfMessagesVisible, QueueName, cis-filesearch-index-queue]
              - [AWS/SQS, ApproximateNumberOfMessagesVisible, QueueName, cis-filesearch-dlq]

- name: Dashboard body from a template
  cloudwatch_dashboard:
    name: cis-filesearch-worker
    body: "{{ lookup('ansible.builtin.template', 'dashboard.json.j2') }}"
    endpoint_url: http://127.0.0.1:4566

- name: Remove a dashboard
  cloudwatch_dashboard:
    name: cis-filesearch-old
    state: absent
"""

RETURN = r"""
name:
  description: Dashboard name.
  returned: always
  type: str
  sample: cis-filesearch
dashboard_arn:
  description: Dashboard ARN; null when it does not exist (after O(state=absent)).
  returned: always
  type: str
  sample: arn:aws:cloudwatch::000000000000:dashboard/cis-filesearch
body:
  description:
    - The normalised dashboard body now in place (or that would be, in check mode).
    - Null when absent.
  returned: always
  type: dict
  sample: {"widgets": []}
validation_messages:
  description: PutDashboard's validation messages (warnings; the dashboard was still saved).
  returned: when the dashboard was put
  type: list
  elements: dict
  sample: [{"DataPath": "/widgets/0", "Message": "Should have at least 1 metric"}]
diff:
  description: Before and after bodies (indented JSON) when run with C(--diff).
  returned: when diff mode is on
  type: dict
  sample: {"before": "", "after": "{\n  \"widgets\": []\n}\n"}
"""

import json
from typing import Any

from ansible.module_utils.filesearch import BOTO_ERRORS, FilesearchAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code

NOT_FOUND_CODES = ("ResourceNotFound", "ResourceNotFoundException", "DashboardNotFoundError")


def argument_spec() -> dict[str, Any]:
    """The module's own options (AnsibleAWSModule adds the common AWS ones)."""
    return {
        "name": {"type": "str", "required": True},
        "body": {"type": "json"},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    }


def normalise(body: str) -> Any:
    """The body as parsed JSON (compared as data, so key order and spacing never matter)."""
    return json.loads(body)


def render(body: Any) -> str:
    """Indented, key-sorted JSON for diffs; empty string for no dashboard."""
    if body is None:
        return ""
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


def current(module: FilesearchAWSModule, cloudwatch: Any, name: str) -> tuple[Any, str | None]:
    """(normalised body, ARN) of the existing dashboard, (None, None) when there is none."""
    try:
        found = cloudwatch.get_dashboard(DashboardName=name)
    except is_boto3_error_code(NOT_FOUND_CODES):
        return None, None
    except is_boto3_error_code("InvalidParameterValue") as exc:
        # LocalStack answers a missing dashboard with InvalidParameterValue
        if "does not exist" in str(exc):
            return None, None
        module.fail_json_aws(exc, msg=f"Cannot read dashboard {name}")
    except BOTO_ERRORS as exc:  # pylint: disable=duplicate-except
        module.fail_json_aws(exc, msg=f"Cannot read dashboard {name}")
    try:
        return normalise(found.get("DashboardBody") or "{}"), found.get("DashboardArn")
    except ValueError:
        module.warn(f"The current body of dashboard {name} is not JSON; it will be replaced")
        return found.get("DashboardBody"), found.get("DashboardArn")


def main() -> None:
    module = FilesearchAWSModule(
        argument_spec=argument_spec(),
        required_if=[("state", "present", ["body"])],
        supports_check_mode=True,
    )
    name: str = module.params["name"]
    state: str = module.params["state"]
    wanted: Any = None
    if state == "present":
        try:
            wanted = normalise(module.params["body"])
        except ValueError as exc:
            module.fail_json(msg=f"body is not valid JSON: {exc}")
        if not isinstance(wanted, dict):
            module.fail_json(msg=f"body must be a JSON object, got {type(wanted).__name__}")

    cloudwatch = module.client("cloudwatch")
    before, arn = current(module, cloudwatch, name)
    after = wanted if state == "present" else None
    changed = before != after
    result: dict[str, Any] = {"changed": changed, "name": name, "dashboard_arn": arn, "body": after}
    if module._diff:
        result["diff"] = {
            "before": render(before),
            "after": render(after),
            "before_header": f"dashboard {name}",
            "after_header": f"dashboard {name}",
        }

    if changed and not module.check_mode:
        try:
            if state == "present":
                put = cloudwatch.put_dashboard(
                    DashboardName=name, DashboardBody=json.dumps(after, sort_keys=True)
                )
                result["validation_messages"] = put.get("DashboardValidationMessages", [])
                for message in result["validation_messages"]:
                    module.warn(f"dashboard {name}: {message.get('Message')}")
                result["dashboard_arn"] = cloudwatch.get_dashboard(DashboardName=name).get(
                    "DashboardArn"
                )
            else:
                cloudwatch.delete_dashboards(DashboardNames=[name])
                result["dashboard_arn"] = None
        except BOTO_ERRORS as exc:
            action = "put" if state == "present" else "delete"
            module.fail_json_aws(exc, msg=f"Cannot {action} dashboard {name}", **result)
    if state == "absent":
        result["dashboard_arn"] = None
    module.exit_json(**result)


if __name__ == "__main__":
    main()

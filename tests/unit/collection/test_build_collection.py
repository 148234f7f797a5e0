"""scripts/build_collection.py's rewrites, on small inputs (the real build: tests/integration)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[3]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_collection", REPO / "scripts" / "build_collection.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bc = _load()
UTILS = "ansible_collections.filesearch_ops.filesearch.plugins.module_utils"


def test_imports_of_our_module_utils_become_the_collections() -> None:
    source = (
        "from ansible.module_utils.basic import AnsibleModule\n"
        "from ansible.module_utils.filesearch import BOTO_ERRORS, FilesearchAWSModule\n"
        "    import ansible.module_utils.filesearch_redis as fr\n"
        "from ansible.module_utils.filesearch_awsx import nothing\n"
    )
    out = bc.rewrite_module_utils_imports(source, {"filesearch", "filesearch_redis"})
    assert out.splitlines() == [
        "from ansible.module_utils.basic import AnsibleModule",
        f"from {UTILS}.filesearch import BOTO_ERRORS, FilesearchAWSModule",
        f"    import {UTILS}.filesearch_redis as fr",
        "from ansible.module_utils.filesearch_awsx import nothing",
    ]


def test_doc_fragment_references_get_the_collection_prefix() -> None:
    source = (
        "extends_documentation_fragment:\n"
        "  - filesearch_redis\n"
        "  - filesearch_redis.layout\n"
        "  - amazon.aws.common.modules\n"
        "options:\n"
        "  - filesearch_redis\n"
        "extends_documentation_fragment: [filesearch_aws, amazon.aws.boto3]\n"
    )
    out = bc.rewrite_doc_fragments(source, {"filesearch_redis", "filesearch_aws"})
    assert out.splitlines() == [
        "extends_documentation_fragment:",
        "  - filesearch_ops.filesearch.filesearch_redis",
        "  - filesearch_ops.filesearch.filesearch_redis.layout",
        "  - amazon.aws.common.modules",
        "options:",
        "  - filesearch_redis",
        "extends_documentation_fragment:"
        " [filesearch_ops.filesearch.filesearch_aws, amazon.aws.boto3]",
    ]


def test_renamed_module_documentation_and_examples() -> None:
    source = "module: sqs_queue_status\n- name: Read\n  sqs_queue_status:\n    queue: q\n"
    out = bc.rename_module(source, "sqs_queue_status", "sqs_queue_info")
    assert "module: sqs_queue_info\n" in out
    assert "  filesearch_ops.filesearch.sqs_queue_info:\n" in out


def test_role_yaml_names_the_collections_modules_by_fqcn() -> None:
    source = (
        "- name: Dashboard\n"
        "  module_defaults:\n"
        "    cloudwatch_dashboard: *aws\n"
        "    group/amazon.aws.aws: *aws\n"
        "  cloudwatch_dashboard:\n"
        "    name: x\n"
        "- sqs_queue_status:\n"
        "    queue: q\n"
        "  vars:\n"
        "    cloudwatch_dashboard_name: y\n"
    )
    modules = {"cloudwatch_dashboard": "cloudwatch_dashboard", "sqs_queue_status": "sqs_queue_info"}
    out = bc.qualify_modules_in_yaml(source, modules).splitlines()
    assert out[2] == "    filesearch_ops.filesearch.cloudwatch_dashboard: *aws"
    assert out[3] == "    group/amazon.aws.aws: *aws"
    assert out[4] == "  filesearch_ops.filesearch.cloudwatch_dashboard:"
    assert out[6] == "- filesearch_ops.filesearch.sqs_queue_info:"
    assert out[9] == "    cloudwatch_dashboard_name: y"


def test_aws_modules_are_recognised_by_their_fragments() -> None:
    assert bc.is_aws_module({"extends_documentation_fragment": ["amazon.aws.common.modules"]})
    assert bc.is_aws_module({"extends_documentation_fragment": "filesearch_aws"})
    assert bc.is_aws_module(
        {"extends_documentation_fragment": ["filesearch_ops.filesearch.filesearch_aws"]}
    )
    assert not bc.is_aws_module(
        {"extends_documentation_fragment": ["filesearch_ops.filesearch.filesearch_redis"]}
    )
    assert not bc.is_aws_module({})

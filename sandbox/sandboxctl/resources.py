"""The sandbox's AWS resources (playbooks/sandbox.yml) and what `up` writes for others.

``$SANDBOX_DIR/env`` holds shell ``export`` lines (``. .sandbox/env``);
``$SANDBOX_DIR/stack.json`` holds the same values plus the test hosts, for
tests and tools.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

from .config import (
    ACCESS_KEY,
    BUCKET_NAME,
    DLQ_NAME,
    HOST_USER,
    INDEX_NAME,
    QUEUE_NAME,
    REGION,
    REPO,
    SECRET_KEY,
    Config,
)
from .procs import SandboxError
from .services import VENV_BIN


def aws_env(cfg: Config) -> dict[str, str]:
    """Environment for boto3, the AWS CLI and Ansible's AWS modules at the emulator."""
    return {
        "AWS_ENDPOINT_URL": cfg.aws_endpoint,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }


def run_playbook(cfg: Config) -> None:
    """Create the queues and the bucket with playbooks/sandbox.yml (idempotent)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(aws_env(cfg))
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env.setdefault("ANSIBLE_LOCALHOST_WARNING", "False")
    argv = [
        str(VENV_BIN / "ansible-playbook"),
        "-i",
        str(REPO / "inventories" / "local"),
        "-e",
        f"sandbox_aws_endpoint_url={cfg.aws_endpoint}",
        str(REPO / "playbooks" / "sandbox.yml"),
    ]
    log_file = cfg.run_dir / "playbook.log"
    with log_file.open("w") as out:
        done = subprocess.run(
            argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        tail = "\n".join(log_file.read_text().splitlines()[-30:])
        raise SandboxError(f"playbooks/sandbox.yml failed (log {log_file}):\n{tail}")


def queue_urls(cfg: Config) -> tuple[str, str]:
    import boto3  # imported here: keeps `status` light

    sqs = boto3.client(
        "sqs",
        endpoint_url=cfg.aws_endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    return (
        sqs.get_queue_url(QueueName=QUEUE_NAME)["QueueUrl"],
        sqs.get_queue_url(QueueName=DLQ_NAME)["QueueUrl"],
    )


def stack_data(cfg: Config, aws_kind: str, hosts: dict[str, int]) -> dict[str, Any]:
    queue_url, dlq_url = queue_urls(cfg)
    env = {
        **aws_env(cfg),
        "OPENSEARCH_ENDPOINT": cfg.opensearch_endpoint,
        "OPENSEARCH_INDEX": INDEX_NAME,
        "SQS_QUEUE_URL": queue_url,
        "SQS_DLQ_URL": dlq_url,
        "S3_BUCKET": BUCKET_NAME,
        "REDIS_URL": cfg.redis_url,
    }
    return {
        "state_dir": str(cfg.state_dir),
        "aws_emulator": aws_kind,
        "aws_endpoint": cfg.aws_endpoint,
        "region": REGION,
        "opensearch_endpoint": cfg.opensearch_endpoint,
        "opensearch_index": INDEX_NAME,
        "queue_url": queue_url,
        "dlq_url": dlq_url,
        "bucket": BUCKET_NAME,
        "redis": redis_data(cfg),
        "env": env,
        "ssh_key": str(cfg.ssh_key),
        "hosts": {
            name: {"address": "127.0.0.1", "port": port, "user": HOST_USER}
            for name, port in hosts.items()
        },
    }


def redis_data(cfg: Config) -> dict[str, Any]:
    """What stack.json says about the sandbox's redis-server."""
    return {"url": cfg.redis_url, "host": "127.0.0.1", "port": cfg.redis_port}


def set_redis_outputs(cfg: Config, running: bool) -> bool:
    """Add (or remove) Redis in an existing stack.json and env; False when there are none.

    `sandbox/ctl redis up|down` on a running stack changes only these keys, so
    the rest of what `up` wrote (queue URLs, hosts) is kept as it is.
    """
    if not cfg.stack_file.exists():
        return False
    data = json.loads(cfg.stack_file.read_text())
    if running:
        data["redis"] = redis_data(cfg)
        data["env"]["REDIS_URL"] = cfg.redis_url
    else:
        data.pop("redis", None)
        data["env"].pop("REDIS_URL", None)
    write_outputs(cfg, data)
    return True


def write_outputs(cfg: Config, data: dict[str, Any]) -> None:
    lines = ["# written by sandbox/ctl up; load with: . .sandbox/env"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in data["env"].items()]
    _atomic_write(cfg.env_file, "\n".join(lines) + "\n")
    _atomic_write(cfg.stack_file, json.dumps(data, indent=2) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)

"""Code the filesearch modules share: AWS options, boto3 clients, error reporting.

Imported by the modules in ``library/`` as ``ansible.module_utils.filesearch_aws``.
The option names follow amazon.aws (``region``, ``endpoint_url`` alias
``aws_endpoint_url``, ``profile``, ``access_key``, ``secret_key``,
``session_token``). Left unset, boto3 resolves each of them itself, so
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_PROFILE``,
``AWS_REGION`` and the usual credential chain are honoured.
"""

from __future__ import annotations

import traceback
from typing import Any, NoReturn

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None

#: The botocore errors fail_aws reports; catch them as ``except BOTO_ERRORS``.
BOTO_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError) if HAS_BOTO3 else ()

try:
    import filesearch_worker  # noqa: F401  (presence check; modules import what they use)
except ImportError:
    HAS_FILESEARCH_WORKER = False
    FILESEARCH_WORKER_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_FILESEARCH_WORKER = True
    FILESEARCH_WORKER_IMPORT_ERROR = None

#: How the worker package is named in missing_required_lib messages.
FILESEARCH_WORKER_LIB = "filesearch-worker (pip install files/worker)"

#: botocore retry configuration used for every client the modules make.
RETRY_MAX_ATTEMPTS = 5

USER_AGENT_EXTRA = "filesearch-ops"


def aws_argument_spec() -> dict[str, Any]:
    """Return the AWS connection options common to the filesearch modules."""
    return {
        "region": {
            "type": "str",
            "aliases": ["aws_region"],
            "fallback": (env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"]),
        },
        "endpoint_url": {"type": "str", "aliases": ["aws_endpoint_url"]},
        "profile": {"type": "str", "aliases": ["aws_profile"]},
        "access_key": {
            "type": "str",
            "aliases": ["aws_access_key_id", "aws_access_key"],
            "no_log": False,
        },
        "secret_key": {
            "type": "str",
            "aliases": ["aws_secret_access_key", "aws_secret_key"],
            "no_log": True,
        },
        "session_token": {
            "type": "str",
            "aliases": ["aws_session_token"],
            "no_log": True,
        },
    }


#: Pass to AnsibleModule(mutually_exclusive=...) together with aws_argument_spec().
AWS_MUTUALLY_EXCLUSIVE: list[list[str]] = [
    ["profile", "access_key"],
    ["profile", "secret_key"],
    ["profile", "session_token"],
]
AWS_REQUIRED_TOGETHER: list[list[str]] = [["access_key", "secret_key"]]


def require_boto3(module: AnsibleModule) -> None:
    """Fail the module with missing_required_lib when boto3 cannot be imported."""
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"), exception=BOTO3_IMPORT_ERROR)


def require_filesearch_worker(module: AnsibleModule) -> None:
    """Fail the module when the filesearch_worker package cannot be imported."""
    if not HAS_FILESEARCH_WORKER:
        module.fail_json(
            msg=missing_required_lib(FILESEARCH_WORKER_LIB),
            exception=FILESEARCH_WORKER_IMPORT_ERROR,
        )


def client_config() -> Any:
    """botocore Config with the standard retry mode (throttling and 5xx retried)."""
    return Config(
        retries={"mode": "standard", "max_attempts": RETRY_MAX_ATTEMPTS},
        user_agent_extra=USER_AGENT_EXTRA,
    )


def session_from_params(params: dict[str, Any]) -> Any:
    """A boto3 Session from the module's AWS options (unset options: boto3's defaults)."""
    return boto3.session.Session(
        profile_name=params.get("profile") or None,
        aws_access_key_id=params.get("access_key") or None,
        aws_secret_access_key=params.get("secret_key") or None,
        aws_session_token=params.get("session_token") or None,
        region_name=params.get("region") or None,
    )


def aws_client(module: AnsibleModule, service: str) -> Any:
    """A boto3 client for ``service``; configuration errors fail the module."""
    require_boto3(module)
    try:
        session = session_from_params(module.params)
        return session.client(
            service,
            endpoint_url=module.params.get("endpoint_url") or None,
            config=client_config(),
        )
    except (BotoCoreError, ValueError) as exc:
        fail_aws(module, exc, f"Cannot create the {service} client")


def error_code(exc: BaseException) -> str:
    """The AWS error code of ``exc`` (ClientError), else its class name."""
    if HAS_BOTO3 and isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


def fail_aws(module: AnsibleModule, exc: BaseException, msg: str, **result: Any) -> NoReturn:
    """Fail the module for an AWS error, with its error code in msg and in ``error_code``."""
    code = error_code(exc)
    details: dict[str, Any] = {"error_code": code}
    if HAS_BOTO3 and isinstance(exc, ClientError):
        details["error"] = dict(exc.response.get("Error", {}))
        details["response_metadata"] = dict(exc.response.get("ResponseMetadata", {}))
    module.fail_json(
        msg=f"{msg}: {code}: {exc}",
        exception=traceback.format_exc(),
        **details,
        **result,
    )
    raise AssertionError("fail_json returned")  # pragma: no cover  (fail_json exits)

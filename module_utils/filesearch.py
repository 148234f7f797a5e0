"""Code the filesearch modules share that amazon.aws does not provide.

Imported by the modules in ``library/`` as ``ansible.module_utils.filesearch``.
The AWS options, their documentation, the clients and the error reporting are
amazon.aws's (``AnsibleAWSModule``, doc fragments ``amazon.aws.common.modules``,
``amazon.aws.region.modules``, ``amazon.aws.boto3``). What is left here:

- ``FilesearchAWSModule``: ``AnsibleAWSModule`` whose clients keep botocore's
  ``standard`` retry mode, whose AWS failures also name the error code
  (``error_code``, and in ``msg``), as these modules always reported it, and
  whose warnings are returned once, without a deprecation warning;
- ``boto3_session()`` / ``signing_credentials()``: the task's credentials, for
  engine code that signs its own requests (SigV4 to OpenSearch);
- the ``filesearch_worker`` presence check.
"""

from __future__ import annotations

import traceback
from typing import Any, NoReturn

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.amazon.aws.plugins.module_utils.botocore import (  # type: ignore[import-untyped]
    get_aws_connection_info,
)
from ansible_collections.amazon.aws.plugins.module_utils.modules import (  # type: ignore[import-untyped]
    AnsibleAWSModule,
)

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # reported by AnsibleAWSModule (missing_required_lib)
    HAS_BOTO3 = False
else:
    HAS_BOTO3 = True

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

#: botocore's client-config ``retries.max_attempts``: the number of *retries*.
#: botocore adds the first call (``total_max_attempts = max_attempts + 1``), so
#: a call is made at most 6 times: the first and up to 5 retries.
RETRY_MAX_ATTEMPTS = 5

#: The botocore errors a module reports with fail_json_aws: ``except BOTO_ERRORS``.
BOTO_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError) if HAS_BOTO3 else ()


def retry_config() -> Any:
    """botocore Config: the ``standard`` retry mode (throttling and 5xx retried)."""
    return Config(retries={"mode": "standard", "max_attempts": RETRY_MAX_ATTEMPTS})


def error_code(exc: BaseException) -> str:
    """The AWS error code of ``exc`` (ClientError), else its class name."""
    if HAS_BOTO3 and isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


class FilesearchAWSModule(AnsibleAWSModule):  # type: ignore[misc]  # amazon.aws is untyped
    """``AnsibleAWSModule`` with standard retries and error codes in failures.

    ``client(service)`` passes ``retry_config()`` unless the caller gives a
    ``config`` (the task's ``aws_config`` is merged on top by amazon.aws either
    way). ``fail_json_aws(exc, msg)`` fails with ``msg: "<msg>: <code>: <error>"``
    and ``error_code: <code>`` besides amazon.aws's ``error``/``response_metadata``.
    """

    def _should_inject_warnings(self) -> bool:
        # amazon.aws 10.1.2 passes the module's warnings to exit_json/fail_json again on
        # ansible-core >= 2.19, which already returns every module.warn() itself; the copy
        # only adds "Passing `warnings` to `exit_json` or `fail_json` is deprecated".
        return False

    def client(self, service: str, retry_decorator: Any = None, **extra_params: Any) -> Any:
        extra_params.setdefault("config", retry_config())
        return super().client(service, retry_decorator, **extra_params)

    def fail_json_aws(
        self, exception: BaseException, msg: str | None = None, **kwargs: Any
    ) -> NoReturn:
        code = error_code(exception)
        kwargs.setdefault("error_code", code)
        super().fail_json_aws(exception, msg=f"{msg}: {code}" if msg else code, **kwargs)
        raise AssertionError("fail_json returned")  # pragma: no cover  (fail_json exits)

    def boto3_session(self) -> Any:
        """A boto3 Session holding the task's credentials and region.

        Built from the same options as ``client()`` (``access_key``/``secret_key``/
        ``session_token``, or ``profile``, else boto3's default chain), for engine
        code that needs credentials rather than a client: the OpenSearch SigV4
        signer. A bad profile fails the task like a bad client would.
        """
        region, _endpoint, params = get_aws_connection_info(self)
        try:
            return boto3.session.Session(
                aws_access_key_id=params.get("aws_access_key_id"),
                aws_secret_access_key=params.get("aws_secret_access_key"),
                aws_session_token=params.get("aws_session_token"),
                profile_name=params.get("profile_name"),
                region_name=region,
            )
        except BotoCoreError as exc:
            self.fail_json_aws(exc, msg="Couldn't connect to AWS")

    def signing_credentials(self) -> Any:
        """The task's botocore credentials for SigV4 (OpenSearch); fails when there are none."""
        credentials = self.boto3_session().get_credentials()
        if credentials is None:
            self.fail_json(
                msg="opensearch_auth sigv4 needs AWS credentials and none were found: give "
                "access_key and secret_key, or profile, or configure boto3's credential chain"
            )
        return credentials

    def require_filesearch_worker(self) -> None:
        """Fail with missing_required_lib when the filesearch_worker package is missing."""
        if not HAS_FILESEARCH_WORKER:
            self.fail_json(
                msg=missing_required_lib(FILESEARCH_WORKER_LIB),
                exception=FILESEARCH_WORKER_IMPORT_ERROR,
            )

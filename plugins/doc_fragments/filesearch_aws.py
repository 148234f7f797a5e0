"""Documentation fragment of the AWS connection options every filesearch module takes.

Modules say ``extends_documentation_fragment: [filesearch_aws]``; ansible.cfg's
``doc_fragment_plugins`` points here. The options are the ones
``module_utils/filesearch_aws.aws_argument_spec()`` declares, named as in
amazon.aws (tests/unit/modules/test_docs.py checks the two agree).
"""

from __future__ import annotations


class ModuleDocFragment:
    """The ``filesearch_aws`` fragment."""

    DOCUMENTATION = r"""
options:
  region:
    description: AWS region. Defaults to E(AWS_REGION) / E(AWS_DEFAULT_REGION) or the profile's.
    type: str
    aliases: [aws_region]
  endpoint_url:
    description:
      - URL of the AWS endpoint (an emulator such as LocalStack) for every service the module calls.
      - When unset, boto3 honours E(AWS_ENDPOINT_URL) and E(AWS_ENDPOINT_URL_<SERVICE>).
    type: str
    aliases: [aws_endpoint_url]
  profile:
    description:
      - Named AWS profile.
      - Mutually exclusive with O(access_key), O(secret_key) and O(session_token).
    type: str
    aliases: [aws_profile]
  access_key:
    description: AWS access key id. Defaults to boto3's credential chain.
    type: str
    aliases: [aws_access_key_id, aws_access_key]
  secret_key:
    description: AWS secret access key. Defaults to boto3's credential chain.
    type: str
    aliases: [aws_secret_access_key, aws_secret_key]
  session_token:
    description: AWS session token for temporary credentials.
    type: str
    aliases: [aws_session_token]
"""

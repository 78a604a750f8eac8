"""A navarch provider for AWS EC2: GPU machines on demand or spot, through RunInstances.

    [providers.ec2]
    type = "aws"
    regions = ["us-east-1"]
    image_id = "ami-0123456789abcdef0"

README.md describes the settings, the credentials and the IAM policy it needs.
"""

from __future__ import annotations

from navarch.plugins import Register, hookimpl
from navarch_aws.provider import AwsProvider
from navarch_aws.settings import AwsSettings

__all__ = ["AwsProvider", "AwsSettings"]


@hookimpl
def navarch_providers(register: Register) -> None:
    register("aws", AwsProvider)

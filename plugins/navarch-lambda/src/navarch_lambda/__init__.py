"""A navarch provider for Lambda Cloud: GPU machines through the Lambda Cloud API v1.

Install the `navarch-lambda` distribution next to navarch and name the type in a provider table:

    [providers.lambda]
    type = "lambda"
    ssh_key_name = "ops"

The API key comes from `LAMBDA_API_KEY` (or the file `api_key_file` names). README.md describes
every setting.
"""

from navarch.plugins import Register, hookimpl
from navarch_lambda.provider import LambdaProvider
from navarch_lambda.settings import LambdaSettings

__all__ = ["LambdaProvider", "LambdaSettings", "navarch_providers"]


@hookimpl
def navarch_providers(register: Register) -> None:
    register("lambda", LambdaProvider)

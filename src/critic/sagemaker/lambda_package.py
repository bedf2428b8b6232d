"""``critic package --lambda api.zip``: the Lambda function of lambda_handler.py, as the zip
Lambda's Python runtime takes: the handler at the top, and under ``critic/`` the few light
modules that record votes in the DynamoDB feedback table (critic.serving.ab.dynamodb and what
it imports), so that the function records them with the very code the servers use. boto3
comes with the runtime; nothing in the zip needs numpy."""

from __future__ import annotations

import zipfile
from pathlib import Path

import critic
from critic.errors import CriticError
from critic.fileio import write_atomic
from critic.sagemaker import lambda_handler

HANDLER = "lambda_handler.handler"  # the function's Handler setting
RUNTIME = "python3.12"
# critic.serving.ab.dynamodb and everything of critic it imports, with the packages above them
# (a test runs the zip with nothing else of critic to be found).
CRITIC_MODULES = (
    "critic/__init__.py",
    "critic/errors.py",
    "critic/serving/__init__.py",
    "critic/serving/ab/__init__.py",
    "critic/serving/ab/answers.py",
    "critic/serving/ab/votes.py",
    "critic/serving/ab/dynamodb.py",
)
FEEDBACK_ACTIONS = (
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
)


def package_lambda(out: Path) -> Path:
    """Write the zip of the Lambda function to ``out`` (atomically); return its path."""
    out = Path(out)
    if out.suffix != ".zip":
        raise CriticError(f"{out}: a Lambda package is a .zip file")
    if out.is_dir():
        raise CriticError(f"{out} is a folder: name the .zip file to write")
    # Where critic is installed: src/ in a checkout, site-packages/ from a wheel.
    installed = Path(critic.__file__).parent.parent
    files = {"lambda_handler.py": Path(lambda_handler.__file__).read_bytes()}
    for name in CRITIC_MODULES:
        files[name] = (installed / name).read_bytes()

    def write(temporary: Path) -> None:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, source in files.items():
                # A fixed date: the same source makes the same zip (and the same CodeSha256).
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, source)

    write_atomic(out, write)
    return out


def deployment_hints(out: Path) -> list[str]:
    """How to make the function from the zip and put API Gateway in front of it."""
    return [
        f"lambda: handler {HANDLER}, runtime {RUNTIME}; set CRITIC_ENDPOINT_NAME to the endpoint, "
        "and CRITIC_FEEDBACK_TABLE to the feedback table for answer ids and POST /feedback",
        "  aws lambda create-function --function-name critic-api "
        f"--runtime {RUNTIME} --handler {HANDLER} --zip-file fileb://{out} "
        "--role ROLE_ARN --timeout 60 "
        "--environment Variables={CRITIC_ENDPOINT_NAME=ENDPOINT,CRITIC_FEEDBACK_TABLE=TABLE}",
        "  the role needs sagemaker:InvokeEndpoint on the endpoint, and with a feedback table "
        f"{', '.join(FEEDBACK_ACTIONS)} on the table; then an API Gateway REST API with Lambda "
        "proxy integration on POST (and OPTIONS for CORS), for / and /feedback",
    ]

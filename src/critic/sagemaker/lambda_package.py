"""``critic package --lambda api.zip``: the Lambda function of lambda_handler.py, as the zip
Lambda's Python runtime takes (boto3 comes with the runtime, so the file alone is enough)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from critic.errors import CriticError
from critic.fileio import write_atomic
from critic.sagemaker import lambda_handler

HANDLER = "lambda_handler.handler"  # the function's Handler setting
RUNTIME = "python3.12"


def package_lambda(out: Path) -> Path:
    """Write the zip of the Lambda function to ``out`` (atomically); return its path."""
    out = Path(out)
    if out.suffix != ".zip":
        raise CriticError(f"{out}: a Lambda package is a .zip file")
    if out.is_dir():
        raise CriticError(f"{out} is a folder: name the .zip file to write")
    source = Path(lambda_handler.__file__).read_bytes()

    def write(temporary: Path) -> None:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            # A fixed date: the same source makes the same zip (and the same CodeSha256).
            info = zipfile.ZipInfo("lambda_handler.py", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source)

    write_atomic(out, write)
    return out


def deployment_hints(out: Path) -> list[str]:
    """How to make the function from the zip and put API Gateway in front of it."""
    return [
        f"lambda: handler {HANDLER}, runtime {RUNTIME}; set CRITIC_ENDPOINT_NAME to the endpoint",
        "  aws lambda create-function --function-name critic-api "
        f"--runtime {RUNTIME} --handler {HANDLER} --zip-file fileb://{out} "
        "--role ROLE_ARN --timeout 60 "
        "--environment Variables={CRITIC_ENDPOINT_NAME=ENDPOINT}",
        "  the role needs sagemaker:InvokeEndpoint on the endpoint; then an API Gateway REST API "
        "with Lambda proxy integration on POST (and OPTIONS for CORS)",
    ]

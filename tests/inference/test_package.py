"""The SageMaker model artifact, driven through the real sagemaker-inference toolkit."""

import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from critic.fileio import package_files
from critic.inference.predictor import Predictor
from support.bundles import small_bundle, unsafe_files
from support.cli import run_cli

REVIEWS = [
    "A wonderful, moving film!",
    "Not good. Boring and far too long.",
    "It was fine, I guess?",
]

# Runs in a fresh interpreter with only model_dir/code on PYTHONPATH, as in SageMaker's
# PyTorch serving container: the toolkit's DefaultHandlerService loads code/inference.py and
# calls model_fn, then input_fn -> predict_fn -> output_fn for each request.
DRIVER = textwrap.dedent(
    """
    import json, sys
    from sagemaker_inference.default_handler_service import DefaultHandlerService
    from sagemaker_inference.default_inference_handler import DefaultInferenceHandler
    from sagemaker_inference.transformer import Transformer

    class RequestProcessor:
        def __init__(self, headers):
            self.headers = headers
        def get_request_properties(self):
            return self.headers

    class Context:
        # The part of the model server's context object that the toolkit uses.
        def __init__(self, model_dir, headers):
            self.system_properties = {"model_dir": model_dir, "gpu_id": None}
            self.request_processor = [RequestProcessor(headers)]
            self.status = None
            self.content_type = None
        def set_response_content_type(self, index, value):
            self.content_type = value
        def set_response_status(self, code, phrase):
            self.status = code

    model_dir, requests = sys.argv[1], json.loads(sys.stdin.read())
    before = set(sys.modules)
    service = DefaultHandlerService(Transformer(default_inference_handler=DefaultInferenceHandler()))
    # As in the model server: one context for the model's life, its request part renewed
    # for every request (the toolkit keeps the context it was initialised with).
    context = Context(model_dir, {})
    service.initialize(context)
    import critic
    answers = {"critic_source": critic.__file__, "responses": []}
    for request in requests:
        context.request_processor = [RequestProcessor(request["headers"])]
        context.status = context.content_type = None
        (body,) = service.handle([{"body": request["body"].encode()}], context)
        if isinstance(body, bytes):
            body = body.decode()
        answers["responses"].append({"status": context.status, "content_type": context.content_type, "body": body})
    # Which backend answered: the scorer of the model the toolkit loaded.
    answers["scorer"] = type(service._service._model.scorer).__name__
    # What answering needed: the container brings torch, requirements.txt numpy and safetensors.
    answers["fitting_libraries"] = sorted(
        {name.split(".")[0] for name in set(sys.modules) - before} & {"sklearn", "scipy", "matplotlib"}
    )
    print(json.dumps(answers))
    """
)


@pytest.fixture(scope="module", params=["trained_bundle", "nbsvm_bundle", "ensemble_bundle"])
def bundle(request):
    """Every kind of bundle: a neural model, nbsvm, an ensemble."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def model_dir(bundle, tmp_path_factory):
    from critic.inference.bundle import package_bundle

    root = tmp_path_factory.mktemp("artifact")
    archive = package_bundle(bundle, root / "model.tar.gz")
    target = root / "opt" / "ml" / "model"
    target.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def test_the_artifact_has_the_layout_the_pytorch_container_loads(model_dir, bundle):
    names = {p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()}
    assert {"config.json", "metrics.json", "calibration.json", "bundle.json"} <= names
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert set(manifest["files"]) <= names  # members of an ensemble included
    assert {"code/inference.py", "code/requirements.txt", "code/critic/serving/handler.py"} <= names
    assert not any("__pycache__" in name for name in names)
    script = (model_dir / "code" / "inference.py").read_text()
    for function in ("model_fn", "input_fn", "predict_fn", "output_fn"):
        assert function in script
    assert (
        "torch" not in (model_dir / "code" / "requirements.txt").read_text()
    )  # the container has it


def test_the_artifact_holds_only_safe_formats_and_critics_own_files(model_dir):
    assert unsafe_files(model_dir) == []
    import critic

    package = Path(critic.__file__).resolve().parent
    shipped = sorted(
        p.relative_to(model_dir / "code" / "critic")
        for p in (model_dir / "code" / "critic").rglob("*")
        if p.is_file()
    )
    # The rule sourcedir.tar.gz follows too (critic.fileio.package_files): one list of files.
    assert shipped == package_files(package)


def drive(model_dir, requests):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CRITIC_BACKEND")}
    env["PYTHONPATH"] = str(model_dir / "code")
    completed = subprocess.run(
        [sys.executable, "-c", DRIVER, str(model_dir)],
        input=json.dumps(requests), capture_output=True, text=True, env=env, timeout=120, cwd="/",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def served_first(response):
    return json.loads(response["body"])["predictions"][0]


def test_the_toolkit_answers_as_the_predictor_does(model_dir, bundle):
    answers = drive(
        model_dir,
        [
            {
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"instances": REVIEWS}),
            },
            {"headers": {"Content-Type": "text/plain"}, "body": REVIEWS[1]},
            {
                "headers": {"Content-Type": "text/csv", "Accept": "text/plain"},
                "body": "\n".join(json.dumps(r) for r in REVIEWS),
            },
            {
                "headers": {
                    "Content-Type": "text/plain",
                    "X-Amzn-SageMaker-Custom-Attributes": "explain=true",
                },
                "body": REVIEWS[0],
            },
        ],
    )
    # The vendored copy answered, not the critic installed in this environment.
    assert answers["critic_source"].startswith(str(model_dir / "code"))
    expected = Predictor.load(bundle).predict(REVIEWS)
    assert answers["fitting_libraries"] == []
    as_json, as_text, as_plain, explained = answers["responses"]
    words = json.loads(explained["body"])["predictions"][0]["words"]
    assert [w["word"] for w in words] == ["a", "wonderful", "moving", "film", "!"]
    assert "words" not in served_first(as_json)
    assert as_json["content_type"] == "application/json"
    served = json.loads(as_json["body"])["predictions"]
    for got, want in zip(served, expected, strict=True):
        assert got["label"] == want["label"]
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-6)
        assert got["score"] == pytest.approx(want["score"], abs=1e-6)
        assert got["rating"] == want["rating"]
    assert json.loads(as_text["body"])["predictions"][0]["probability"] == pytest.approx(
        expected[1]["probability"], abs=1e-6
    )
    assert as_plain["content_type"] == "text/plain"
    assert as_plain["body"].split("\n") == [
        "1" if p["label"] == "positive" else "0" for p in expected
    ]


def test_client_mistakes_are_4xx_inside_the_toolkit_too(model_dir):
    answers = drive(
        model_dir,
        [
            {"headers": {"Content-Type": "text/plain"}, "body": "   "},
            {"headers": {"Content-Type": "application/xml"}, "body": "<review/>"},
            {"headers": {"Content-Type": "application/json"}, "body": "{broken"},
            {
                "headers": {
                    "Content-Type": "text/plain",
                    "X-Amzn-SageMaker-Custom-Attributes": "explain=ture",
                },
                "body": "A fine film.",
            },
        ],
    )
    statuses = [response["status"] for response in answers["responses"]]
    assert statuses == [400, 415, 400, 400]
    assert "the review is empty" in answers["responses"][0]["body"]
    assert "explain must be true or false, got 'ture'" in answers["responses"][3]["body"]


def unpack(archive: Path) -> Path:
    target = archive.parent / "opt" / "ml" / "model"
    target.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def test_an_artifact_packaged_with_the_onnx_backend_answers_through_onnx_runtime_as_torch_does(
    trained_bundle, tmp_path
):
    from critic.inference.bundle import package_bundle

    model_dir = unpack(package_bundle(trained_bundle, tmp_path / "model.tar.gz", backend="onnx"))
    requirements = (model_dir / "code" / "requirements.txt").read_text()
    assert "onnxruntime" in requirements and "torch" not in requirements
    answers = drive(
        model_dir,
        [
            {
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"instances": REVIEWS}),
            }
        ],
    )
    assert answers["scorer"] == "OnnxScorer"
    expected = Predictor.load(trained_bundle).predict(REVIEWS)
    served = json.loads(answers["responses"][0]["body"])["predictions"]
    for got, want in zip(served, expected, strict=True):
        assert got["label"] == want["label"]
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-5)


def test_the_default_artifact_keeps_the_containers_pytorch(trained_bundle, tmp_path):
    from critic.inference.bundle import package_bundle

    model_dir = unpack(package_bundle(trained_bundle, tmp_path / "model.tar.gz"))
    assert "onnx" not in (model_dir / "code" / "requirements.txt").read_text()
    answers = drive(model_dir, [{"headers": {"Content-Type": "text/plain"}, "body": REVIEWS[0]}])
    assert answers["scorer"] == "NeuralScorer"
    assert served_first(answers["responses"][0])["label"] in ("positive", "negative")


def test_package_refuses_in_one_line_a_model_onnx_runtime_cannot_answer_for(tmp_path):
    bundle = small_bundle(tmp_path, "cnn-lstm")
    out = tmp_path / "model.tar.gz"
    completed = run_cli("package", bundle, "--out", out, "--backend", "onnx", timeout=120)
    assert completed.returncode == 1
    assert (
        completed.stderr.strip().splitlines() == [completed.stderr.strip()]
        and "cnn-lstm model cannot be served with --backend onnx" in completed.stderr
    )
    assert not out.exists()


def test_package_refuses_an_unknown_backend_with_the_valid_ones(trained_bundle, tmp_path):
    from critic.errors import BundleError
    from critic.inference.bundle import package_bundle

    with pytest.raises(BundleError, match="valid backends: torch, onnx, auto"):
        package_bundle(trained_bundle, tmp_path / "model.tar.gz", backend="tvm")

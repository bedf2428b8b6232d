"""The model registry: bundles as MLflow model versions, aliases, and ``models:/`` served.

``critic register runs/lstm --name critic --alias challenger`` logs the bundle as a pyfunc
model (:mod:`critic.tracking.pyfunc`; to the run that trained it when it was tracked) and
registers it as the next version of ``critic``. ``critic alias critic champion 3`` moves an
alias. ``critic serve --variant champion=models:/critic@champion`` takes a version through
:func:`fetch_bundle`: downloaded once into critic's cache, its manifest compared with the
one registered and every file checked against the manifest (as any bundle is), then served
as a local bundle.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from critic import __version__
from critic.errors import BundleError, CriticError
from critic.fileio import replace_folder_atomic, sha256_file, write_text_atomic
from critic.inference.bundle import MANIFEST, recorded_run, verify_bundle
from critic.tracking.settings import TrackingSettings, client, import_mlflow

MODELS_SCHEME = "models:/"
BUNDLE_ARTIFACT = "bundle"
"""The pyfunc model's one artifact: the bundle."""
MANIFEST_TAG = "critic.manifest_sha256"
"""A version's tag: the SHA-256 of the bundle's manifest as registered. The manifest holds
every other file's checksum, so this one figure pins the whole bundle."""
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class RegisteredBundle:
    """A registry version, fetched: the local bundle, and what it is in the registry."""

    path: Path
    name: str
    version: str
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"{MODELS_SCHEME}{self.name}/{self.version}"


def is_model_uri(text: str) -> bool:
    return str(text).startswith(MODELS_SCHEME)


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` as (name, alias, version)."""
    matched = MODEL_URI.match(uri)
    if matched is None:
        raise CriticError(f"{uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    return matched["name"], matched["alias"], matched["version"]


def _registry(settings: TrackingSettings, what: str, recorded: str | None = None):
    uri = settings.uri(recorded)
    return uri, client(uri, what)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def register_bundle(
    settings: TrackingSettings, bundle: Path, name: str, aliases: list[str] | None = None
) -> RegisteredBundle:
    """Register ``bundle`` as the next version of the model ``name``, with ``aliases``.

    The pyfunc model is saved here, logged as the ``model`` artifact of the run that trained
    the bundle (a run of its own when it was not tracked), and that artifact registered:
    MLflow's client throughout, none of its global "current run" or tracking URI.
    """
    bundle = Path(bundle)
    manifest = verify_bundle(bundle)
    mlflow = import_mlflow("critic register")
    recorded = recorded_run(bundle)
    _, tracker = _registry(settings, "critic register", recorded and recorded["tracking_uri"])
    from critic.tracking import pyfunc_model
    from critic.tracking.runs import TrackedRun

    run = TrackedRun.of_bundle(settings, bundle) if recorded is not None else None
    if run is None:
        run = TrackedRun.start(
            settings,
            f"register {bundle.name}",
            tags={"critic.command": "register", "critic.bundle": str(bundle)},
        )
        run.end()
    with tempfile.TemporaryDirectory(prefix="critic-register-") as folder:
        # The bundle's own files alone (not plots or checkpoints left beside them).
        copy = Path(folder) / "bundle"
        for relative in [*manifest["files"], MANIFEST]:
            (copy / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle / relative, copy / relative)
        model = Path(folder) / "model"
        mlflow.pyfunc.save_model(
            str(model),
            python_model=pyfunc_model.__file__,
            artifacts={BUNDLE_ARTIFACT: str(copy)},
            # The pyfunc model is critic's Predictor: loading it needs critic itself.
            pip_requirements=[f"critic=={__version__}", f"mlflow=={mlflow.__version__}"],
        )
        artifact = "model"
        tracker.log_artifacts(run.run_id, str(model), artifact)
    try:
        tracker.get_registered_model(name)
    except Exception:  # MlflowException RESOURCE_DOES_NOT_EXIST: the first version
        tracker.create_registered_model(name)
    version = tracker.create_model_version(
        name,
        source=f"runs:/{run.run_id}/{artifact}",
        run_id=run.run_id,
        tags={
            MANIFEST_TAG: sha256_file(bundle / MANIFEST),
            "critic.model": manifest["model"],
            "critic.bundle": str(bundle),
        },
    ).version
    for alias in aliases or []:
        tracker.set_registered_model_alias(name, alias, str(version))
    return RegisteredBundle(bundle, name, str(version))


def move_alias(settings: TrackingSettings, name: str, alias: str, target: str) -> str:
    """Point ``alias`` of the model ``name`` at ``target``: a version number, or ``@OTHER``
    (the version another alias names, e.g. the challenger's). Returns the version."""
    _, tracker = _registry(settings, "critic alias")
    try:
        version = (
            tracker.get_model_version_by_alias(name, target[1:]).version
            if target.startswith("@")
            else tracker.get_model_version(name, target).version
        )
        tracker.set_registered_model_alias(name, alias, str(version))
    except Exception as error:  # MlflowException: no such model, version or alias
        if isinstance(error, CriticError):
            raise
        raise CriticError(f"models:/{name}: {_first_line(error)}") from None
    return str(version)


def cache_folder(cache_dir: Path, uri: str, name: str, version: str) -> Path:
    """Where a version of a registry is kept: one folder per registry (a hash of its URI),
    model and version -- version 3 of another registry's "critic" is another model."""
    registry = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return Path(cache_dir) / "registry" / registry / name / version


def fetch_bundle(settings: TrackingSettings, model_uri: str, cache_dir: Path) -> RegisteredBundle:
    """The bundle of ``models:/NAME@ALIAS`` (or ``/VERSION``), in critic's cache: downloaded
    when not there (or damaged), then checked -- its manifest against the SHA-256 registered
    with the version, every file against the manifest."""
    name, alias, number = parse_model_uri(model_uri)
    uri, tracker = _registry(settings, "models:/ URIs")
    try:
        version = (
            tracker.get_model_version_by_alias(name, alias)
            if alias
            else tracker.get_model_version(name, number)
        )
    except Exception as error:  # MlflowException: no such model, alias or version
        raise CriticError(
            f"{model_uri} is not in the registry at {uri}: {_first_line(error)}"
        ) from None
    expected = (version.tags or {}).get(MANIFEST_TAG)
    if not expected:
        raise BundleError(f"{model_uri} (version {version.version}) was not registered by critic")
    target = cache_folder(cache_dir, uri, name, str(version.version))
    if not _matches(target, expected):
        mlflow = import_mlflow("models:/ URIs")

        def download(folder: Path) -> None:
            with tempfile.TemporaryDirectory(prefix="critic-fetch-", dir=folder.parent) as raw:
                # The version's own artifact location: a models:/ URI would be resolved
                # against MLflow's global registry, not this one.
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=tracker.get_model_version_download_uri(name, version.version),
                    dst_path=raw,
                    tracking_uri=uri,
                )
                model = mlflow.models.Model.load(local)
                relative = model.flavors["python_function"]["artifacts"][BUNDLE_ARTIFACT]["path"]
                shutil.copytree(Path(local) / relative, folder, dirs_exist_ok=True)

        target.parent.mkdir(parents=True, exist_ok=True)
        replace_folder_atomic(target, download)
        if not _matches(target, expected):
            raise BundleError(
                f"{model_uri} (version {version.version}): the downloaded bundle's manifest "
                "does not match the one registered"
            )
    verify_bundle(target)
    # Beside the bundle, not in it (its manifest signs what is inside): which registry and
    # version it is, for whatever serves it to find again (release_alias).
    write_text_atomic(
        _origin_file(target),
        json.dumps({"tracking_uri": uri, "name": name, "version": str(version.version)}),
    )
    return RegisteredBundle(target, name, str(version.version), alias)


def _origin_file(folder: Path) -> Path:
    return folder.parent / f"{folder.name}.origin.json"


def origin_of(bundle: Path) -> dict[str, str] | None:
    """The registry, model and version a bundle fetched by :func:`fetch_bundle` came from;
    None for any other bundle."""
    try:
        origin = json.loads(_origin_file(Path(bundle)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    wanted = ("tracking_uri", "name", "version")
    if not isinstance(origin, dict) or not all(isinstance(origin.get(k), str) for k in wanted):
        return None
    return origin


def release_alias(alias: str, log) -> Callable[[str, Path], None]:
    """What a release of a variant (critic.serving.state.EndpointState.on_release) does to the
    registry: when the variant's bundle came from ``models:/``, point ``alias`` of its model at
    its version -- so that a promoted shadow or a completed rollout leaves the registry saying
    what serves. Any other bundle is left alone."""

    def released(variant: str, bundle: Path) -> None:
        origin = origin_of(bundle)
        if origin is None:
            return
        tracker = client(origin["tracking_uri"], "moving a registry alias")
        name, version = origin["name"], origin["version"]
        tracker.set_registered_model_alias(name, alias, version)
        log(f"registry: models:/{name}@{alias} is now version {version} ({variant} released)")

    return released


def _matches(folder: Path, expected: str) -> bool:
    """Whether ``folder`` holds the bundle registered: its manifest the one registered, and
    every file the manifest's (a damaged copy in the cache is fetched again)."""
    manifest = folder / MANIFEST
    if not manifest.is_file() or sha256_file(manifest) != expected:
        return False
    try:
        verify_bundle(folder)
    except BundleError:
        return False
    return True

"""The shared ``massmailer`` package as a Lambda layer, bundled without Docker.

At synth time pip downloads the Lambda-compatible wheels of the package's runtime dependencies
(``--platform manylinux… --only-binary=:all: --python-version 3.13``) into ``<dir>/python`` and the
package source is copied next to them. Both are cached under ``build/layer-cache/``, keyed by a
hash of what goes in (requirements, platform, Python version; package files), so pip runs again
only when the dependencies or the architecture change, and a second synth needs no network.

With ``bundle_dependencies=False`` (tests, quick synths) pip is not run: the asset holds only the
package source.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import REPO_ROOT

PACKAGE_NAME = "massmailer"
PACKAGE_SOURCE = REPO_ROOT / "layers" / PACKAGE_NAME
PYPROJECT = REPO_ROOT / "pyproject.toml"
CACHE_ROOT = REPO_ROOT / "build" / "layer-cache"
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_13
LAMBDA_PYTHON_VERSION = LAMBDA_RUNTIME.name.removeprefix("python")  # "3.13"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".mypy_cache")
# Lambda's Python 3.13 runtime is Amazon Linux 2023 (glibc 2.34): manylinux2014 (glibc 2.17) wheels
# and newer manylinux_2_28 / 2_34 wheels all run there.
_MANYLINUX_TAGS = ("manylinux2014", "manylinux_2_28", "manylinux_2_34")


@dataclass(frozen=True)
class LayerBuild:
    """The third-party half of the layer: which wheels, for which platform and Python."""

    requirements: tuple[str, ...]
    platform_arch: str  # "aarch64" | "x86_64"
    python_version: str = LAMBDA_PYTHON_VERSION

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(f"{tag}_{self.platform_arch}" for tag in _MANYLINUX_TAGS)

    def digest(self) -> str:
        return _digest(*self.requirements, *self.platforms, self.python_version)

    def pip_command(self, target: Path) -> list[str]:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        for platform in self.platforms:
            command += ["--platform", platform]
        command += [
            "--only-binary=:all:",
            "--implementation", "cp",
            "--python-version", self.python_version,
            "--target", str(target),
            "--no-compile",
            *self.requirements,
        ]  # fmt: skip
        return command


def runtime_requirements(pyproject: Path = PYPROJECT) -> tuple[str, ...]:
    """The ``[project] dependencies`` of pyproject.toml: what the package needs at run time."""
    with pyproject.open("rb") as fh:
        return tuple(tomllib.load(fh)["project"]["dependencies"])


def build_layer_directory(build: LayerBuild, *, bundle_dependencies: bool) -> Path:
    """Build (or reuse) the layer directory and return it; its ``python/`` is the layer's root.

    Two cache levels: the pip-installed dependencies (``deps-…``, rebuilt only when the
    requirements or the platform change) and the layer itself (dependencies + package source).
    """
    source_digest = _digest(*_source_fingerprint(PACKAGE_SOURCE))
    if not bundle_dependencies:
        return _cached(f"source-{source_digest}", _copy_package)

    def install(site: Path) -> None:
        subprocess.run(build.pip_command(site), check=True)  # noqa: S603 - our own argv
        shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts are useless in a layer

    dependencies = _cached(f"deps-{build.platform_arch}-{build.digest()}", install)

    def assemble(site: Path) -> None:
        shutil.copytree(dependencies / "python", site)
        _copy_package(site)

    return _cached(f"layer-{build.platform_arch}-{_digest(build.digest(), source_digest)}", assemble)


def _copy_package(site: Path) -> None:
    shutil.copytree(PACKAGE_SOURCE, site / PACKAGE_NAME, ignore=_IGNORED, dirs_exist_ok=True)


def _cached(name: str, fill: Callable[[Path], None]) -> Path:
    """``CACHE_ROOT/name``, built once by ``fill(<dir>/python)``; older entries of its kind go."""
    final = CACHE_ROOT / name
    if final.is_dir():
        return final
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=CACHE_ROOT))
    try:
        fill(staging / "python")
        try:
            os.rename(staging, final)  # atomic: a half-built entry is never picked up
        except OSError:
            if not final.is_dir():  # anything but "a concurrent synth built it first"
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    kind = name.rsplit("-", 1)[0]
    for stale in CACHE_ROOT.glob(f"{kind}-*"):
        if stale != final and stale.name.rsplit("-", 1)[0] == kind:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def _source_fingerprint(root: Path) -> list[str]:
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".pyc", ".pyo"}
    )
    return [f"{p.relative_to(root).as_posix()}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in files]


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


class SharedLayer(Construct):
    """``massmailer`` + its runtime dependencies as one LayerVersion for every function."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer_name: str,
        architecture: lambda_.Architecture,
        bundle_dependencies: bool,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        build = LayerBuild(
            requirements=runtime_requirements(),
            platform_arch="aarch64" if architecture.name == lambda_.Architecture.ARM_64.name else "x86_64",
        )
        directory = build_layer_directory(build, bundle_dependencies=bundle_dependencies)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            layer_version_name=layer_name,
            description=f"{PACKAGE_NAME} domain package and its runtime dependencies",
            code=lambda_.Code.from_asset(str(directory)),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[architecture],
            removal_policy=removal_policy,
        )

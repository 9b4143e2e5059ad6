"""The shared ``massmailer`` package as a Lambda layer, bundled without Docker.

The layer holds exactly the versions pinned in ``uv.lock``. At synth time ``uv export`` lists the
package's runtime dependencies from the lock (every one pinned, with the hashes of its files); the
ones whose environment markers hold on Lambda (Linux, CPython 3.13, the function's architecture) go
to pip, which downloads their Lambda-compatible wheels (``--platform manylinux…
--only-binary=:all: --python-version 3.13 --require-hashes --no-deps``) into ``<dir>/python``; the
package source is copied next to them. Both are cached under ``build/layer-cache/``, keyed by the
lock's hash (plus platform and Python version; the package files), so pip runs again only when the
lock or the architecture changes, and a second synth needs no network.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct
from packaging.requirements import Requirement

from infra.config import REPO_ROOT

PACKAGE_NAME = "massmailer"
PACKAGE_SOURCE = REPO_ROOT / "layers" / PACKAGE_NAME
LOCK_FILE = REPO_ROOT / "uv.lock"
# The uv that `make` bootstraps (requirements-uv.txt); $UV or the PATH's uv otherwise.
BOOTSTRAPPED_UV = REPO_ROOT / ".tools" / "uv" / "bin" / "uv"
CACHE_ROOT = REPO_ROOT / "build" / "layer-cache"
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_13
LAMBDA_PYTHON_VERSION = LAMBDA_RUNTIME.name.removeprefix("python")  # "3.13"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".mypy_cache")
# Lambda's Python 3.13 runtime is Amazon Linux 2023 (glibc 2.34): manylinux2014 (glibc 2.17) wheels
# and newer manylinux_2_28 / 2_34 wheels all run there.
_MANYLINUX_TAGS = ("manylinux2014", "manylinux_2_28", "manylinux_2_34")


@dataclass(frozen=True)
class LayerBuild:
    """The third-party half of the layer: the lock's runtime dependencies, for which platform and Python."""

    platform_arch: str  # "aarch64" | "x86_64"
    lock: Path = LOCK_FILE
    python_version: str = LAMBDA_PYTHON_VERSION

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(f"{tag}_{self.platform_arch}" for tag in _MANYLINUX_TAGS)

    def digest(self) -> str:
        """The dependencies' cache key: the lock file's hash, the platforms and the Python version."""
        return _digest(hashlib.sha256(self.lock.read_bytes()).hexdigest(), *self.platforms, self.python_version)

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values on Lambda (so a ``; sys_platform == 'win32'`` dependency stays out)."""
        full_version = f"{self.python_version}.0"
        return {
            "implementation_name": "cpython",
            "implementation_version": full_version,
            "os_name": "posix",
            "platform_machine": self.platform_arch,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": full_version,
            "python_version": self.python_version,
            "sys_platform": "linux",
            "extra": "",
        }

    def select(self, exported: str) -> str:
        """The requirements file for pip: the exported pins whose markers hold here, hashes kept."""
        environment = self.marker_environment()
        lines = []
        for requirement, hashes in parse_exported_requirements(exported):
            if requirement.marker is None or requirement.marker.evaluate(environment):
                requirement.marker = None
                lines.append(" ".join([str(requirement), *(f"--hash={h}" for h in hashes)]))
        return "".join(f"{line}\n" for line in lines)

    def pip_command(self, target: Path, requirements_file: Path) -> list[str]:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        for platform in self.platforms:
            command += ["--platform", platform]
        command += [
            "--only-binary=:all:",
            "--implementation", "cp",
            "--python-version", self.python_version,
            "--target", str(target),
            "--no-compile",
            "--no-deps",  # the export is already the whole closure: nothing is resolved again
            "--require-hashes",
            "--requirement", str(requirements_file),
        ]  # fmt: skip
        return command


def uv_executable() -> str:
    """$UV, else the uv that `make` installed in .tools/, else the one on PATH."""
    if os.environ.get("UV"):
        return os.environ["UV"]
    if BOOTSTRAPPED_UV.is_file():
        return str(BOOTSTRAPPED_UV)
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv not found: run `make venv` (it installs uv into .tools/uv) or set $UV")
    return found


def export_runtime_requirements(lock: Path = LOCK_FILE) -> str:
    """``uv export`` of the lock: the package's runtime dependencies (no extras), pinned and hashed."""
    command = [
        uv_executable(), "export", "--frozen", "--format", "requirements-txt", "--no-dev",
        "--no-emit-project", "--no-header", "--no-annotate", "--project", str(lock.parent),
    ]  # fmt: skip
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout  # noqa: S603 - our own argv


def parse_exported_requirements(exported: str) -> list[tuple[Requirement, tuple[str, ...]]]:
    """``name==version ; marker --hash=…`` entries of a requirements file (continuations joined)."""
    entries = []
    for entry in exported.replace("\\\n", " ").splitlines():
        words = entry.split(" #", 1)[0].split()
        if not words or words[0].startswith(("#", "-")):  # blank, a comment, or an option line
            continue
        hashes = tuple(w.removeprefix("--hash=") for w in words if w.startswith("--hash="))
        requirement = Requirement(" ".join(w for w in words if not w.startswith("--hash=")))
        entries.append((requirement, hashes))
    return entries


def build_layer_directory(build: LayerBuild, *, bundle_dependencies: bool) -> Path:
    """Build (or reuse) the layer directory and return it; its ``python/`` is the layer's root.

    Two cache levels: the pip-installed dependencies (``deps-…``, rebuilt only when the lock or
    the platform change) and the layer itself (dependencies + package source).
    """
    source_digest = _digest(*_source_fingerprint(PACKAGE_SOURCE))
    if not bundle_dependencies:
        return _cached(f"source-{source_digest}", _copy_package)

    def install(site: Path) -> None:
        requirements_file = site.parent / "requirements.txt"  # beside python/: kept in the cache, not the layer
        requirements_file.write_text(build.select(export_runtime_requirements(build.lock)))
        subprocess.run(build.pip_command(site, requirements_file), check=True)  # noqa: S603 - our own argv
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
            platform_arch="aarch64" if architecture.name == lambda_.Architecture.ARM_64.name else "x86_64"
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

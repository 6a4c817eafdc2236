"""The bento as an OCI image, with Docker where an engine runs and podman where none does.

Which bento: the one `models/bento.json` names (this clone's gated version), never
"the newest in the BentoML store", which may belong to another project. Where no
registry is reachable, the base image the bento's Dockerfile starts FROM can be built
locally from Debian's packages (`local_base_image`)."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import bentoml

from mlops_starter.errors import PipelineError
from mlops_starter.storage import read_json

ENGINE_VARIABLE = "CONTAINER_ENGINE"
ENGINES = ("docker", "podman")
INSTALL_PODMAN = "apt-get install podman runc debootstrap uidmap"
# What the local base must have for the bento's Dockerfile: pip (it runs `pip install uv`),
# and the CA certificates the bento's own apt-get step expects.
BASE_PACKAGES = ("python3", "python3-pip", "ca-certificates")
DEBIAN_RELEASE = "bookworm"  # its python3 is 3.11, the bento's docker.python_version
DEBIAN_MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class Engine:
    """A container engine's command line, with the environment it runs in."""

    name: str
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(  # noqa: S603 (argument list, no shell)
            [self.name, *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise PipelineError(
                f"`{self.name} {' '.join(args)}` failed ({result.returncode}): "
                f"{result.stderr.strip()[-2000:]}"
            )
        return result

    def has_image(self, image: str) -> bool:
        return self.run("image", "inspect", image, check=False).returncode == 0


def podman_config(folder: Path) -> Path:
    """A containers.conf for podman on hosts that sandbox it: containers get this
    process's own resource limits, since podman's defaults exceed what such hosts allow
    (process counts capped at pid_max too: more was refused here), and runc, since crun
    refuses cgroup v1 hosts."""
    pid_max = Path("/proc/sys/kernel/pid_max")
    limits = {
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "nproc": min(
            resource.getrlimit(resource.RLIMIT_NPROC)[1],
            int(pid_max.read_text()) if pid_max.exists() else resource.RLIM_INFINITY,
        ),
    }
    ulimits = ", ".join(
        f'"{name}={limit}:{limit}"'
        for name, limit in limits.items()
        if limit != resource.RLIM_INFINITY
    )
    path = folder / "containers.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[containers]\ndefault_ulimits = [{ulimits}]\n\n[engine]\nruntime = "runc"\n')
    return path


def find_engine(config_folder: Path = Path("build/podman")) -> Engine:
    """$CONTAINER_ENGINE if set; otherwise Docker if its engine answers, else podman."""
    wanted = os.environ.get(ENGINE_VARIABLE)
    if wanted and wanted not in ENGINES:
        raise PipelineError(f"{ENGINE_VARIABLE}={wanted!r}: expected one of {list(ENGINES)}")
    candidates = [wanted] if wanted else list(ENGINES)
    for name in candidates:
        if shutil.which(name) is None:
            continue
        if name == "docker":
            if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:  # noqa: S607 (a tool found on PATH by design)
                return Engine("docker")
            continue
        env = {}
        if "CONTAINERS_CONF" not in os.environ:
            env["CONTAINERS_CONF"] = str(podman_config(config_folder).resolve())
        return Engine("podman", env)
    raise PipelineError(
        f"no container engine: {' nor '.join(candidates)} is usable here. Start a Docker "
        f"engine, or install podman ({INSTALL_PODMAN}); set {ENGINE_VARIABLE} to choose one"
    )


def clone_bento(bento_json: Path = Path("models/bento.json")) -> str:
    """The bento the package stage built in this clone."""
    if not bento_json.exists():
        raise PipelineError(
            f"{bento_json} not found: run `make run` first (its package stage builds this "
            "clone's bento), or containerize a registry version: make containerize VERSION=champion"
        )
    built = read_json(bento_json)
    if not built.get("built"):
        raise PipelineError(
            f"{bento_json}: version {built.get('version')} failed the gate "
            f"({', '.join(built.get('failed_checks', []))}), so no bento was built to containerize"
        )
    return str(built["bento"])


def base_image_of(bento_tag: str) -> str:
    """The image the bento's generated Dockerfile starts FROM."""
    dockerfile = Path(bentoml.get(bento_tag).path) / "env/docker/Dockerfile"
    if match := re.search(r"^FROM\s+(\S+)", dockerfile.read_text(), flags=re.MULTILINE):
        return match.group(1)
    raise PipelineError(f"{dockerfile} has no FROM line")


def local_base_image(engine: Engine, image: str) -> None:
    """Build `image` (python:3.11-slim) from Debian's packages, for hosts that reach
    Debian's mirror and the package index but no container registry.

    debootstrap writes a minimal Debian with python3 and pip (and `python`); Debian's
    EXTERNALLY-MANAGED marker goes (the bento's Dockerfile runs `pip install uv`), and
    the host's CA bundle is trusted, as networks that inspect TLS need."""
    if not re.fullmatch(r"(docker\.io/)?(library/)?python:3\.11(-slim)?", image):
        raise PipelineError(
            f"a local base can stand in for python:3.11-slim only (Debian {DEBIAN_RELEASE}'s "
            f"Python), not {image}: set docker.python_version to 3.11 in bentofile.yaml"
        )
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        raise PipelineError(
            f"building the base image {image} locally needs root and debootstrap ({INSTALL_PODMAN})"
        )
    with tempfile.TemporaryDirectory(prefix="base-image-") as scratch:
        root = Path(scratch) / "rootfs"
        subprocess.run(  # noqa: S603 (argument list, no shell)
            [  # noqa: S607 (a tool found on PATH by design)
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                DEBIAN_RELEASE,
                str(root),
                DEBIAN_MIRROR,
            ],
            check=True,
            capture_output=True,
        )
        (root / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
        python = root / "usr/bin/python"
        if not python.exists():
            python.symlink_to("python3")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        changes = ['CMD ["python3"]']
        if HOST_CA_BUNDLE.exists():
            shutil.copy(HOST_CA_BUNDLE, root / "etc/ssl/host-ca-bundle.crt")
            changes += [
                f"ENV {name}=/etc/ssl/host-ca-bundle.crt" for name in ("SSL_CERT_FILE", "PIP_CERT")
            ]
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)  # noqa: S603, S607 (argument list, no shell; a tool found on PATH by design)
        imported = subprocess.run(  # noqa: S603 (argument list, no shell)
            [engine.name, "import", *(f"--change={c}" for c in changes), "-", image],
            stdin=tar.stdout,
            env={**os.environ, **engine.env},
            capture_output=True,
            text=True,
        )
        tar.wait()
        if imported.returncode != 0:
            raise PipelineError(f"importing the base image failed: {imported.stderr.strip()}")


def ensure_base_image(engine: Engine, image: str, build_locally: bool) -> None:
    """The base present, pulled, or (with `build_locally`) built from Debian's packages."""
    if engine.has_image(image):
        return
    pulled = engine.run("pull", image, check=False, timeout=600)
    if pulled.returncode == 0:
        return
    if not build_locally:
        raise PipelineError(
            f"cannot pull the base image {image} ({pulled.stderr.strip()[-300:]}); with no "
            "registry reachable, build it from Debian's packages: make containerize LOCAL_BASE=1"
        )
    local_base_image(engine, image)


def containerize(bento_tag: str, engine: Engine, build_base_locally: bool = False) -> str:
    """Build the bento's image with `engine`; returns the image tag (the bento's tag)."""
    ensure_base_image(engine, base_image_of(bento_tag), build_base_locally)
    built = subprocess.run(  # noqa: S603 (argument list, no shell)
        [
            str(Path(sys.executable).parent / "bentoml"),
            "containerize",
            bento_tag,
            "--backend",
            engine.name,
            "--image-tag",
            bento_tag,
        ],
        env={**os.environ, **engine.env},
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        raise PipelineError(
            f"{engine.name} could not build {bento_tag}: {(built.stderr or built.stdout).strip()[-2000:]}"
        )
    return bento_tag

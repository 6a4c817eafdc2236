"""Container benchmark: this clone's bento as an image (`mlops containerize`), measured.

    - build time: the first build, then a rebuild with nothing changed (cached layers);
    - image size, and each layer's size, largest first (what to cut next);
    - cold start to /readyz: the container against `bentoml serve` of the same bento on
      this machine, alternated, `--starts` times each, so the ratio is measured side by
      side on a shared, noisy machine.

Prints the figures and writes JSON (--out, default benchmarks/results/container.json).

    make bench-container            # after make run; LOCAL_BASE=1 where no registry is reachable
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from mlops_starter.serving.container import Engine, clone_bento, containerize, find_engine
from mlops_starter.serving.process import bentoml_server, free_port
from mlops_starter.storage import write_json


def ready_after(url: str, started: float, timeout: float = 180) -> float:
    deadline = started + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url}/readyz did not answer within {timeout:.0f} s")


def image_layers(engine: Engine, image: str) -> list[tuple[int, str]]:
    """(bytes, build step) per layer: podman lists them as one JSON array, Docker as one
    JSON object a line with human-readable sizes."""
    if engine.name == "podman":
        listed = json.loads(engine.run("history", "--format", "json", image).stdout)
        return [(int(layer["size"]), layer["CreatedBy"]) for layer in listed]
    shown = engine.run(
        "history", "--human=false", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image
    ).stdout
    return [
        (int(size), step) for size, step in (line.split("\t", 1) for line in shown.splitlines())
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--local-base", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/container.json")
    args = parser.parse_args()

    bento = clone_bento()
    engine = find_engine()
    started = time.monotonic()
    image = containerize(bento, engine, build_base_locally=args.local_base)
    first_build = time.monotonic() - started
    started = time.monotonic()
    containerize(bento, engine)
    rebuild = time.monotonic() - started
    size = int(engine.run("image", "inspect", "--format", "{{.Size}}", image).stdout)
    layers = sorted(image_layers(engine, image), reverse=True)

    container_starts, host_starts = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.starts):
            name = f"bench-{uuid.uuid4().hex[:8]}"
            port = free_port()
            started = time.monotonic()
            engine.run("run", "--detach", "--name", name, "-p", f"127.0.0.1:{port}:3000", image)
            try:
                container_starts.append(ready_after(f"http://127.0.0.1:{port}", started))
            finally:
                engine.run("rm", "--force", name, check=False)
            started = time.monotonic()
            env = {**os.environ, "MLOPS_PREDICTION_LOG_DIR": f"{scratch}/predictions"}
            with bentoml_server(bento, free_port(), Path(scratch) / "serve.log", env):
                host_starts.append(time.monotonic() - started)

    container_ready = statistics.median(container_starts)
    host_ready = statistics.median(host_starts)
    report = {
        "machine": {"platform": platform.platform(), "engine": engine.name},
        "bento": bento,
        "image": image,
        "image_bytes": size,
        "largest_layers": [{"bytes": size, "step": step[-160:]} for size, step in layers[:5]],
        "build_s": {"first": round(first_build, 1), "cached_rebuild": round(rebuild, 1)},
        "cold_start_to_ready_s": {
            "container_median": round(container_ready, 2),
            "bentoml_serve_on_host_median": round(host_ready, 2),
            "container_over_host": round(container_ready / host_ready, 2),
            "container_runs": [round(s, 2) for s in container_starts],
            "host_runs": [round(s, 2) for s in host_starts],
        },
    }
    write_json(args.out, report)
    print(f"image {image}: {size / 1e9:.2f} GB")
    for layer in report["largest_layers"]:
        print(f"  {layer['bytes'] / 1e6:8.1f} MB  {layer['step'][-100:]}")
    print(f"build: {first_build:.1f} s, cached rebuild: {rebuild:.1f} s")
    print(
        f"cold start to /readyz: container {container_ready:.2f} s, bentoml serve on the host "
        f"{host_ready:.2f} s (ratio {container_ready / host_ready:.2f})"
    )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()

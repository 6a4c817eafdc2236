"""Stage package: if the gate passed, import the registered version into the BentoML
model store and build a bento of it (`bentoml containerize <tag>` makes the image).
A failed gate builds nothing and says so in models/bento.json."""

from pathlib import Path

from mlops_starter.config import Config
from mlops_starter.runner import stage
from mlops_starter.serving.packaging import package_gated_version
from mlops_starter.storage import read_json, write_json


@stage("package")
def main() -> None:
    cfg = Config.from_yaml()
    gate = read_json(Path(cfg.paths.reports) / "gate.json")
    write_json(Path(cfg.paths.model_dir) / "bento.json", package_gated_version(gate, cfg))


if __name__ == "__main__":
    main()

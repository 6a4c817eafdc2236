"""Stage package: if the gate passed, import the registered version into the BentoML
model store and build a bento of it (`bentoml containerize <tag>` makes the image).
A failed gate builds nothing and says so in models/bento.json."""

import logging
from pathlib import Path

from mlops_starter.config import Config
from mlops_starter.packaging import build_bento, import_version
from mlops_starter.registry import Registry
from mlops_starter.runner import stage
from mlops_starter.storage import read_json, write_json


@stage("package")
def main() -> None:
    cfg = Config.from_yaml()
    gate = read_json(Path(cfg.paths.reports) / "gate.json")
    out = Path(cfg.paths.model_dir) / "bento.json"
    log = logging.getLogger("package")
    if not gate["passed"]:
        failed = [c["name"] for c in gate["checks"] if not c["passed"]]
        write_json(out, {"built": False, "version": gate["version"], "failed_checks": failed})
        log.warning("version %s failed the gate (%s): no bento built", gate["version"], failed)
        return
    registry = Registry.connect(cfg.mlflow.registered_model)
    version = registry.version(str(gate["version"]))
    model_tag = import_version(registry, version)
    bento = build_bento(model_tag, cfg.serve)
    write_json(
        out,
        {
            "built": True,
            "bento": str(bento.tag),
            "bento_model": model_tag,
            "registered_model": registry.name,
            "version": str(version.version),
            "run_id": version.run_id,
        },
    )
    log.info("built bento %s of %s version %s", bento.tag, registry.name, version.version)


if __name__ == "__main__":
    main()

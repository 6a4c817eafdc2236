"""Stage package: if the gate passed, import the version registered from this model into
the BentoML model store and build a bento of it (`bentoml containerize <tag>` makes the
image). A failed gate builds nothing and says so in models/bento.json."""

from pathlib import Path

from mlops_starter.config import Config
from mlops_starter.lineage import stamp, training_runs
from mlops_starter.runner import stage
from mlops_starter.serving.packaging import package_gated_version
from mlops_starter.storage import write_json


@stage("package")
def main() -> None:
    cfg = Config.from_yaml()
    model_file = Path(cfg.paths.model_dir) / "model.skops"
    runs = training_runs(model_file, cfg.mlflow.experiment)
    write_json(
        Path(cfg.paths.model_dir) / "bento.json",
        package_gated_version([run.info.run_id for run in runs], cfg),
    )
    write_json(
        Path(cfg.paths.model_dir) / "packaged.json",
        stamp("package", cfg.mlflow.registered_model, model_file),
    )


if __name__ == "__main__":
    main()

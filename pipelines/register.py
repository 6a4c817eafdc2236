"""Stage register: gate the evaluated model, register it as a version (alias `challenger`)
with its model card, and write the gate's report and the card. A failed gate does not
fail the stage: `mlops gate` does."""

from pathlib import Path

from mlops_starter.config import Config
from mlops_starter.lineage import stamp, training_run
from mlops_starter.registry.model_card import CardInputs
from mlops_starter.registry.register import register
from mlops_starter.runner import stage
from mlops_starter.storage import write_json, write_text


@stage("register")
def main() -> None:
    cfg = Config.from_yaml()
    model_dir, reports = Path(cfg.paths.model_dir), Path(cfg.paths.reports)
    run = training_run(model_dir / "model.skops", cfg.mlflow.experiment)
    report, markdown, card = register(run, CardInputs.read(cfg), cfg)
    write_json(reports / "gate.json", report)
    write_text(reports / "gate.md", markdown)
    write_text(reports / "model_card.md", card)
    write_json(
        model_dir / "registered.json",
        stamp("register", cfg.mlflow.registered_model, model_dir / "model.skops"),
    )


if __name__ == "__main__":
    main()

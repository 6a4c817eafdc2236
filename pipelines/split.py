"""Stage split: set the test set aside once, then audit the split for leakage."""

from mlops_starter.config import Config
from mlops_starter.runner import stage
from mlops_starter.training.split import split_table


@stage("split")
def main() -> None:
    split_table(Config.from_yaml())


if __name__ == "__main__":
    main()

"""Stage fingerprint@table: what tells DVC a database table changed, its row count and
checksum (or newest data.source.fingerprint_column). dvc.yaml makes this stage only for
a database source (data.recheck_source: [table]); DVC hashes a file source itself."""

from mlops_starter.config import Config
from mlops_starter.data.ingest import fingerprint
from mlops_starter.runner import stage
from mlops_starter.storage import write_json


@stage("fingerprint")
def main() -> None:
    cfg = Config.from_yaml()
    write_json(cfg.paths.source_fingerprint, fingerprint(cfg.data))


if __name__ == "__main__":
    main()

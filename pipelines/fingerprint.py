"""Stage fingerprint: what tells DVC the source changed. A database table's row count and
checksum (or newest data.source.fingerprint_column); a file source's is constant, since
DVC hashes data/source/ itself."""

from mlops_starter.config import Config, DatabaseSource
from mlops_starter.data.database import fingerprint
from mlops_starter.runner import stage
from mlops_starter.storage import write_json


@stage("fingerprint")
def main() -> None:
    cfg = Config.from_yaml()
    if isinstance(cfg.data.source, DatabaseSource):
        found = fingerprint(cfg.data)
    else:
        found = {"source": cfg.data.source_label, "hashed_by": "dvc (data/source/)"}
    write_json(cfg.paths.source_fingerprint, found)


if __name__ == "__main__":
    main()

"""The prediction log never blocks a request: bounded queue, background writer."""

import json
import threading

from mlops_starter.serving.prediction_log import PredictionLog, sampled


def test_entries_become_json_lines_after_close(tmp_path):
    log = PredictionLog(tmp_path).start()
    log.write([{"request_id": "a", "probability": 0.25}, {"request_id": "a", "probability": 0.5}])
    log.close()
    lines = [json.loads(x) for x in log.path.read_text().splitlines()]
    assert [x["probability"] for x in lines] == [0.25, 0.5]
    assert all(x["schema"] == 1 for x in lines)
    assert log.path.name.startswith("predictions-") and log.path.suffix == ".jsonl"


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    dropped = []
    log = PredictionLog(tmp_path, on_drop=dropped.append, max_queued_batches=3)  # not started
    done = threading.Event()

    def five_batches_of_two() -> None:
        for batch in range(5):
            log.write([{"batch": batch, "n": n} for n in range(2)])
        done.set()

    threading.Thread(target=five_batches_of_two).start()
    assert done.wait(timeout=5), "write blocked on a full queue"
    assert sum(dropped) == 4


def test_a_failing_disk_counts_drops(tmp_path):
    dropped = []
    target = tmp_path / "not-a-dir"
    target.write_text("a file where the log directory should be")
    log = PredictionLog(tmp_path, on_drop=dropped.append)
    log.path = target / "x.jsonl"
    log._file_handler.baseFilename = str(log.path)
    log._listener.start()
    log.write([{"n": 1}])
    log.close()
    assert sum(dropped) == 1


def test_sampling_keeps_whole_requests_at_about_the_rate():
    ids = [f"request-{i}" for i in range(4000)]
    kept = [i for i in ids if sampled(i, 0.25)]
    assert 0.2 < len(kept) / len(ids) < 0.3
    assert kept == [i for i in ids if sampled(i, 0.25)]
    assert all(sampled(i, 1.0) for i in ids[:10]) and not any(sampled(i, 0.0) for i in ids[:10])

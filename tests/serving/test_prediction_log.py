"""The prediction log: column-wise batches become the same JSON lines a dict per line
would, and writing never blocks a request (bounded, gathered on the loop, written on
a thread)."""

import asyncio
import gzip
import json
import math
import threading
from datetime import date

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import missing_as_none
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_starter.data.corpus import CORPUS, TASK_CORPUS, load_corpus_table
from mlops_starter.monitoring.incremental import MonitorState
from mlops_starter.monitoring.inputs import log_lines, read_prediction_log
from mlops_starter.serving.prediction_log import (
    FINGERPRINT_KEY,
    LogBatch,
    PredictionLog,
    _RotatingFile,
    fingerprint,
    rewrite_rotated,
    sampled,
)
from mlops_starter.storage import json_records


def batch(rows: int = 2, **keys) -> LogBatch:
    return LogBatch(
        keys or {"request_id": "a"},
        [f"C{n}" for n in range(rows)],
        {"x": list(range(rows))},
        {
            "probability": np.linspace(0.25, 0.5, rows).tolist(),
            "label": [0, 1] * (rows // 2) + [0] * (rows % 2),
        },
    )


def lines_of(log: PredictionLog) -> list[dict]:
    return [json.loads(x) for x in log.path.read_text().splitlines()]


def test_a_batch_becomes_json_lines_after_close(tmp_path):
    log = PredictionLog(tmp_path).start()
    log.write(batch())
    log.close()
    lines = lines_of(log)
    assert [x["probability"] for x in lines] == [0.25, 0.5]
    assert [list(x) for x in lines] == [
        ["schema", "request_id", "id", "features", "probability", "label", "issues"]
    ] * 2
    assert lines[1]["features"] == {"x": 1} and lines[1]["id"] == "C1"
    assert log.path.name.startswith("predictions-") and log.path.suffix == ".jsonl"


# Often JSON's and the bytes template's own characters; any other text as well (but no
# lone surrogates: a JSON body cannot carry them).
text = st.one_of(
    st.sampled_from(["%", "%b", "%%s", '"', "\\", '","', "}{", "\n", "\x00"]),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=8),
)
scalars = st.one_of(
    st.none(),
    text,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_infinity=False),
)
# What a field the model ignores may hold: any JSON value a client sends.
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3)
)
names = text


@settings(max_examples=150, deadline=None)
@given(data=st.data(), rows=st.integers(1, 6))
def test_each_line_is_what_a_dict_per_line_would_give(data, rows):
    """Against the plain way: a dict per line, dumped by json."""
    column = st.lists(scalars, min_size=rows, max_size=rows)
    sent = st.lists(st.one_of(scalars, json_values), min_size=rows, max_size=rows)
    keys = data.draw(st.dictionaries(names, st.one_of(scalars, column), max_size=3))
    features = data.draw(st.one_of(st.none(), st.dictionaries(names, sent, max_size=4)))
    ids = data.draw(st.one_of(st.none(), column))
    probabilities = np.array(data.draw(st.lists(st.floats(0, 1), min_size=rows, max_size=rows)))
    labels = np.array(data.draw(st.lists(st.integers(0, 1), min_size=rows, max_size=rows)))
    issues = {
        name: np.array(data.draw(st.lists(st.booleans(), min_size=rows, max_size=rows)))
        for name in data.draw(st.lists(names, max_size=2, unique=True))
    }
    answer = {"probability": probabilities.tolist(), "label": labels.tolist()}
    encoded = LogBatch(keys, ids, features, answer, issues).encode()

    def plain(value):
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return None if isinstance(value, float) and math.isnan(value) else value

    expected = [
        {
            "schema": 1,
            **{k: plain(v[row] if isinstance(v, list) else v) for k, v in keys.items()},
            "id": None if ids is None else plain(ids[row]),
            "features": None
            if features is None
            else {name: plain(values[row]) for name, values in features.items()},
            "probability": probabilities[row],
            "label": int(labels[row]),
            "issues": [name for name, mask in issues.items() if mask[row]],
        }
        for row in range(rows)
    ]
    assert encoded.endswith(b"\n") and encoded.count(b"\n") == rows
    assert [json.loads(line) for line in encoded.splitlines()] == expected


def test_batches_on_an_event_loop_reach_the_file_after_the_linger(tmp_path):
    """Without close(): gathered on the loop, written once the linger has passed."""
    log = PredictionLog(tmp_path, linger_seconds=0.05).start()

    async def serve() -> bool:
        for request in range(3):
            log.write(batch(request_id=f"r{request}"))
        waiting = not log.path.exists()
        await asyncio.sleep(0.5)
        return waiting

    assert asyncio.run(serve()), "a batch was written before the linger"
    assert [x["request_id"] for x in lines_of(log)] == ["r0", "r0", "r1", "r1", "r2", "r2"]
    log.close()


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    dropped = []
    log = PredictionLog(tmp_path, on_drop=dropped.append, max_queued_flushes=3)  # not started
    done = threading.Event()

    def five_flushes_of_two() -> None:
        for _ in range(5):
            log.write(batch())  # no event loop here: each write is flushed at once
        done.set()

    threading.Thread(target=five_flushes_of_two).start()
    assert done.wait(timeout=5), "write blocked on a full queue"
    assert sum(dropped) == 4
    log.close()  # the writer never ran: the three queued flushes are lost, and counted
    assert sum(dropped) == 10


def test_more_rows_waiting_than_allowed_are_dropped_and_counted(tmp_path):
    dropped = []
    log = PredictionLog(tmp_path, on_drop=dropped.append, max_pending_rows=3).start()

    async def serve() -> None:
        log.write(batch(2))
        log.write(batch(2))  # 4 waiting > 3
        log.write(batch(1))

    asyncio.run(serve())
    log.close()
    assert dropped == [2] and len(lines_of(log)) == 3


def test_a_failing_disk_counts_drops(tmp_path):
    dropped = []
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the log directory should be")
    log = PredictionLog(tmp_path, on_drop=dropped.append)
    log._file.path = blocked / "x.jsonl"
    log.start()
    log.write(batch())
    log.close()
    assert dropped == [2]


def test_a_value_json_cannot_hold_drops_its_batch_only(tmp_path):
    dropped = []
    log = PredictionLog(tmp_path, on_drop=dropped.append).start()
    unencodable = batch(3)
    unencodable.features = {"x": [1, 2**64, 3]}  # beyond 64 bits
    log.write(unencodable)
    log.write(batch(2))
    log.close()
    assert dropped == [3] and len(lines_of(log)) == 2


def entries(rows: int, request_id: str, **changes) -> LogBatch:
    """A batch of whole prediction-log entries (every key the monitor reads)."""
    keys = {"timestamp": "2026-11-24T08:00:00+00:00", "model": "m", "model_version": "1"}
    return batch(rows, request_id=request_id, **keys | changes)


def test_the_file_is_renamed_at_midnight_rewritten_as_parquet_and_a_new_one_begun(tmp_path):
    log = _RotatingFile(tmp_path / "predictions-h-1.jsonl", max_bytes=1 << 20, keep=10)
    before = entries(3, "before").encode()
    log.write(before)
    log._day = date(2026, 1, 1)  # midnight has passed
    log.write(entries(2, "after").encode())
    log.close()
    rotated = [p for p in tmp_path.iterdir() if p != log.path]
    assert len(rotated) == 1 and rotated[0].name.startswith(log.path.name + ".")
    assert rotated[0].suffix == ".parquet"
    table = pq.read_table(rotated[0])
    assert table.column("request_id").to_pylist() == ["before"] * 3
    first_line = before.splitlines(keepends=True)[0]
    assert table.schema.metadata[FINGERPRINT_KEY].decode() == fingerprint(first_line)
    assert [json.loads(x)["request_id"] for x in log.path.read_bytes().splitlines()] == [
        "after"
    ] * 2


def test_lines_that_do_not_fit_one_table_are_gzipped_instead(tmp_path):
    """A feature sent as a number, then as text (an ignored field holds whatever was
    sent), or a line that is no entry: Arrow cannot keep them as one table."""
    log = _RotatingFile(tmp_path / "predictions-h-1.jsonl", max_bytes=1 << 20, keep=10)
    lines, texts = entries(2, "r"), entries(2, "r")
    texts.features = {"x": ["a", "b"]}
    log.write(lines.encode() + texts.encode())
    log._day = date(2026, 1, 1)
    log.write(b'{"request_id": "after"}\n')
    log.close()
    (rotated,) = [p for p in tmp_path.iterdir() if p != log.path]
    assert rotated.suffix == ".gz"
    assert gzip.decompress(rotated.read_bytes()) == lines.encode() + texts.encode()


def test_a_full_file_rotates_and_the_directory_keeps_the_newest(tmp_path):
    log = _RotatingFile(tmp_path / "predictions-h-1.jsonl", max_bytes=100, keep=3)
    lines = [f'{{"request_id": "r{i:02d}", "padding": "{"x" * 30}"}}\n'.encode() for i in range(20)]
    for line in lines:  # 50 bytes each, no entries (so gzipped): every third write rotates
        log.write(line)
    log.close()
    kept = sorted(tmp_path.glob("*.gz"), key=lambda p: p.name)
    assert len(kept) == 3 and not list(tmp_path.glob(".*"))  # no partial left
    held = b"".join(gzip.decompress(p.read_bytes()) for p in kept) + log.path.read_bytes()
    assert held == b"".join(lines[-len(held.splitlines()) :])  # the newest, in order


def test_the_monitor_reads_rotated_files_and_the_open_one_once(tmp_path):
    log = PredictionLog(tmp_path, max_bytes=2_000, keep=1_000).start()
    for number in range(40):
        one = entries(5, f"r{number}")
        if number == 20:  # text where numbers were: that file is gzipped, not Parquet
            one.features = {"x": ["a"] * 5}
        log.write(one)
        log.flush()
    log.close()
    assert len(list(tmp_path.glob("*.parquet"))) > 5 and len(list(tmp_path.glob("*.gz"))) == 1
    # A file caught between its rewrite and its removal is there twice: read once.
    for rewritten in (next(tmp_path.glob("*.parquet")), next(tmp_path.glob("*.gz"))):
        (tmp_path / rewritten.stem).write_bytes(log_lines(read_prediction_log([str(rewritten)])))
    read = read_prediction_log([str(tmp_path / "predictions-*.jsonl*")])
    assert sorted(read["request_id"].value_counts().to_dict().items()) == sorted(
        (f"r{n}", 5) for n in range(40)
    )
    assert set(read["features.x"]) == {0, 1, 2, 3, 4, "a"}


def test_sampling_keeps_whole_requests_at_about_the_rate():
    ids = [f"request-{i}" for i in range(4000)]
    kept = [i for i in ids if sampled(i, 0.25)]
    assert 0.2 < len(kept) / len(ids) < 0.3
    assert kept == [i for i in ids if sampled(i, 0.25)]
    assert all(sampled(i, 1.0) for i in ids[:10]) and not any(sampled(i, 0.0) for i in ids[:10])


def served_answers(kind: str, rows: int, rng: np.random.Generator) -> dict[str, list]:
    """A binary, multi-class or regression model's answer fields, as the service logs them."""
    if kind == "binary":
        p = rng.random(rows)
        return {"probability": p.tolist(), "label": (p > 0.5).astype(int).tolist()}
    if kind == "multiclass":
        p = rng.dirichlet([1, 1, 1], rows)
        return {
            "label": [("a", "b", "c")[i % 3] for i in range(rows)],
            "probabilities": [dict(zip("abc", r, strict=True)) for r in p.tolist()],
        }
    value = rng.normal(size=rows)
    return {"value": value.tolist(), "lower": (value - 1).tolist(), "upper": (value + 1).tolist()}


@pytest.mark.parametrize(
    ("table", "kind"),
    [
        (t, ("binary", "multiclass", "regression")[i % 3])
        for i, t in enumerate(CORPUS + TASK_CORPUS)
    ],
    ids=lambda value: getattr(value, "name", value),
)
def test_real_tables_served_rows_read_alike_before_and_after_rotation(tmp_path, table, kind):
    """A real table's rows, answered by each task in turn, read the same from the open
    JSON-lines file, from its rotated Parquet file, and from the monitor's state."""
    frame = load_corpus_table(table).head(2000).drop(columns=[table.data["target"]])
    rows = json_records(frame)
    rng = np.random.default_rng(0)
    path = tmp_path / "predictions-h-1.jsonl.2026-11-25T00-00-00-000000"
    with open(path, "wb") as log:
        for start in range(0, len(rows), 100):
            day = 24 + start // 1000  # two days, so two windows
            keys = {"request_id": f"r{start}", "model": "m", "model_version": "1"}
            part = rows[start : start + 100]
            log.write(
                LogBatch(
                    {"timestamp": f"2026-11-{day}T08:00:00+00:00", **keys},
                    None,
                    {name: [r[name] for r in part] for name in part[0]},
                    served_answers(kind, len(part), rng),
                ).encode()
            )
    as_written = read_prediction_log([str(path)])
    rewrite_rotated(path, keep=10)
    assert [p.suffix for p in tmp_path.iterdir()] == [".parquet"]
    pattern = [str(tmp_path / "predictions-*")]
    state = MonitorState(tmp_path / "state", "1D", pattern)
    assert state.read_new() == len(as_written)
    kept = pd.concat([state.rows(start) for start in sorted(state.segments)], ignore_index=True)
    for read in (read_prediction_log(pattern), kept):
        pd.testing.assert_frame_equal(
            missing_as_none(read[as_written.columns]),
            missing_as_none(as_written),
            check_dtype=False,
        )

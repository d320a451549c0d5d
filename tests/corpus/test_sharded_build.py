"""The sharded build (a worker per shard, then a global duplicate pass) against the one-process build.

The corpus: 600 real conversations of the bundled ShareGPT corpus written as WildChat shards (the
language left for the build to detect), plus the hand-made rows that exercise each filter
(test_wildchat_build.py), spread over four shards. Planted across shards: one conversation copied
under another conversation hash (its pairs get other pair_ids, the same text) and one row repeated
verbatim (the same pair_ids, as when one shard is given twice).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from empathy_study import corpus
from tests.corpus.test_wildchat_build import PERSONAL_A, fixture_rows
from tests.support.wildchat import conversation_row, write_shard

SHARDS = 4


def real_rows(n: int) -> list[dict]:
    funnel = corpus.Funnel("sharegpt")
    rows = []
    for conversation in itertools.islice(corpus.read_source("sharegpt", [], funnel), n):
        texts = [m.content for m in conversation.messages]
        rows.append(conversation_row(
            texts, roles=[m.role for m in conversation.messages], language=None,
            hashed_ip=f"ip-{len(rows) % 97}",
            conversation_hash=hashlib.md5(conversation.conversation_id.encode()).hexdigest(),
        ))
    return rows


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    started = time.perf_counter()
    data = tmp_path_factory.mktemp("shards")
    rows = list(fixture_rows().values()) + real_rows(600)
    parts = [rows[i::SHARDS] for i in range(SHARDS)]
    # kept_lonely is in shard 0; its copy under another hash goes to shard 3, a verbatim repeat to shard 2.
    lonely = fixture_rows()["kept_lonely"]
    assert lonely["conversation_hash"] in {r["conversation_hash"] for r in parts[0]}
    parts[3].append(conversation_row(PERSONAL_A, conversation_hash="f" * 32, hashed_ip="ip-9"))
    parts[2].append(parts[1][0])  # the first row of shard 1 (kept_breakup), the same turn ids and all
    for i, part in enumerate(parts):
        write_shard(part, data / f"train-{i:05d}-of-{SHARDS:05d}.parquet", row_group_size=50)
    print(f"\n[shards fixture: {sum(map(len, parts))} conversations in {time.perf_counter() - started:.1f} s]")
    return data


def one_process(data: Path, out: Path) -> dict:
    funnel = corpus.Funnel("wildchat")
    corpus.build_corpus(corpus.read_source("wildchat", [str(data)], funnel), out, corpus.CorpusConfig(), funnel)
    return funnel.to_dict()


def sharded(data: Path, out: Path, workers: int, config: corpus.CorpusConfig | None = None, on_progress=None) -> dict:
    funnel = corpus.Funnel("wildchat")
    plans = corpus.plan_wildchat([str(data)], funnel)
    corpus.build_shards(plans, out, config or corpus.CorpusConfig(), funnel, workers, on_progress)
    return funnel.to_dict()


def rows_of(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    assert frame["pair_id"].is_unique
    return frame.sort_values("pair_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def serial(shards, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("serial")
    return out, one_process(shards, out)


def assert_same_build(out: Path, funnel: dict, serial: tuple[Path, dict]) -> None:
    reference_out, reference = serial
    for table in (corpus.TURN_PAIRS_FILE, corpus.TERMINAL_PAIRS_FILE):
        pd.testing.assert_frame_equal(rows_of(out / table), rows_of(reference_out / table))
    note = funnel.pop("build")
    assert funnel == {k: v for k, v in reference.items() if k != "build"}  # how each ran may differ, nothing else
    assert set(note.get("classifier", {})) == {"embedded_now", "seconds"}
    assert [s["records_read"] for s in note["shards"]] == [pq.ParquetFile(f).metadata.num_rows
                                                          for f in sorted(Path(note["shards"][0]["file"]).parent.iterdir())]


@pytest.mark.parametrize("workers", [1, 2])
def test_sharded_build_equals_the_one_process_build(shards, serial, tmp_path, workers):
    steps = []
    started = time.perf_counter()
    funnel = sharded(shards, tmp_path / "study", workers, on_progress=lambda *step: steps.append(step))
    print(f"[sharded build, {workers} worker(s): {time.perf_counter() - started:.1f} s]")
    note = dict(funnel["build"])
    assert_same_build(tmp_path / "study", funnel, serial)
    assert note["workers"] == workers and note["backend"] == "local" and len(note["shards"]) == SHARDS
    assert all(s["peak_rss_mb"] > 0 and s["seconds"] > 0 and s["cpu_seconds"] > 0 for s in note["shards"])
    # progress: every row read, every shard counted, then the duplicate pass
    reads = [s for s in steps if s[0] == f"reading wildchat ({SHARDS} shards)"]
    assert reads[-1][1] == reads[-1][2] == funnel["stages"][0]["rows"]
    assert reads[-1][3] == {"shards_done": SHARDS}
    assert steps[-1][:3] == ("global duplicate pass", 2, 2)
    assert not list((tmp_path / "study").glob(".*"))  # no part files left behind


def test_the_planted_cross_shard_duplicates_are_caught(serial):
    out, funnel = serial
    pairs = pd.read_parquet(out / corpus.TURN_PAIRS_FILE)
    lonely = pairs[pairs["prompt"] == PERSONAL_A[0]]
    assert len(lonely) == 1  # two conversation hashes in shards 0 and 3, one pair kept
    breakup = pairs[pairs["prompt"].str.startswith("My girlfriend broke up with me yesterday")]
    assert len(breakup) == 1  # the verbatim repeat in shard 2: the same pair_id, kept once
    # lonely is there three times (kept_lonely, duplicate_of_lonely, the copy): 2 × 2 pairs dropped;
    # the breakup repeat 1 more; real conversations may add their own
    assert funnel["rejected"]["duplicate_pair"] >= 5


def test_a_shard_repeated_under_new_hashes_adds_nothing_but_duplicates(shards, tmp_path):
    """Known answer: building shard A with a copy A' (other conversation hashes, so other pair_ids)
    keeps exactly A's rows (the smaller pair_id of each twin), and counts every pair of A as a duplicate."""
    original = sorted(shards.glob("*.parquet"))[1]
    frame = pq.read_table(original).to_pylist()
    twins = [{**row, "conversation_hash": hashlib.md5(b"twin" + row["conversation_hash"].encode()).hexdigest()}
             for row in frame]
    data = tmp_path / "twins"
    data.mkdir()
    write_shard(frame, data / "a.parquet")
    write_shard(twins, data / "b.parquet")
    alone = one_process(original, tmp_path / "alone")
    both = sharded(data, tmp_path / "both", workers=2)
    kept = rows_of(tmp_path / "alone" / corpus.TURN_PAIRS_FILE)
    kept_both = rows_of(tmp_path / "both" / corpus.TURN_PAIRS_FILE)
    columns = ["prompt", "response", "reply", "prev_response"]
    pd.testing.assert_frame_equal(kept[columns].sort_values(columns).reset_index(drop=True),
                                  kept_both[columns].sort_values(columns).reset_index(drop=True))
    stages = {s["name"]: s["rows"] for s in both["stages"]}
    alone_stages = {s["name"]: s["rows"] for s in alone["stages"]}
    assert stages["deduplicated"] == alone_stages["deduplicated"] > 0 and stages["classifier"] == len(kept)
    # every pair the cheap pass and the length bounds kept came twice: one copy of each is a duplicate
    assert both["rejected"]["duplicate_pair"] == (alone["rejected"].get("duplicate_pair", 0)
                                                  + alone_stages["deduplicated"])


def corrupt_last_row_group(path: Path) -> None:
    """Overwrite the start of the last row group's first data page: the footer still reads, so the
    shard passes the schema check and fails only when a worker reaches it."""
    metadata = pq.ParquetFile(path).metadata
    start = metadata.row_group(metadata.num_row_groups - 1).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[start:start + 48] = b"\xff" * 48
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_corrupt_shard_fails_by_name_and_leaves_the_old_outputs(shards, tmp_path, workers):
    data = tmp_path / "data"
    data.mkdir()
    for path in sorted(shards.glob("*.parquet")):
        (data / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "study"
    sharded(data, out, workers)  # an earlier, good build
    before = {name: (out / name).read_bytes() for name in (corpus.TURN_PAIRS_FILE, corpus.TERMINAL_PAIRS_FILE)}
    bad = sorted(data.glob("*.parquet"))[2]
    corrupt_last_row_group(bad)
    with pytest.raises(corpus.CorpusError) as failure:
        sharded(data, out, workers)
    message = str(failure.value)
    assert message.startswith(f"{bad} could not be read to the end") and "\n" not in message
    assert {name: (out / name).read_bytes() for name in before} == before
    assert not list(out.glob(".*"))  # no part files, no staged tables


def test_workers_are_never_more_than_shards_and_zero_means_one_per_core(shards, tmp_path):
    funnel = sharded(shards, tmp_path / "study", workers=0)
    assert funnel["build"]["workers"] == min(len(os.sched_getaffinity(0)), SHARDS)
    with pytest.raises(corpus.CorpusError, match="--workers must be 0"):
        sharded(shards, tmp_path / "other", workers=-1)


def test_ray_tasks_build_the_same_and_name_a_failing_shard(shards, serial, tmp_path):
    """[corpus] build_backend = "ray" on a local two-CPU Ray started here (extra empathy-study[ray])."""
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        config = corpus.CorpusConfig(build_backend="ray")
        funnel = sharded(shards, tmp_path / "study", workers=0, config=config)
        assert funnel["build"]["backend"] == "ray" and funnel["build"]["workers"] == 2
        assert_same_build(tmp_path / "study", funnel, serial)
        data = tmp_path / "data"
        data.mkdir()
        for path in sorted(shards.glob("*.parquet")):
            (data / path.name).write_bytes(path.read_bytes())
        bad = sorted(data.glob("*.parquet"))[3]
        corrupt_last_row_group(bad)
        with pytest.raises(corpus.CorpusError) as failure:
            sharded(data, tmp_path / "failed", workers=2, config=config)
        assert str(failure.value).startswith(f"{bad} could not be read to the end") and "\n" not in str(failure.value)
        assert not list((tmp_path / "failed").iterdir())
    finally:
        ray.shutdown()
    print(f"[ray test: {time.perf_counter() - started:.1f} s]")

from __future__ import annotations

import pytest

from airflow_checkpoint_provider.checkpoint.logs import (
    parse_commit,
    parse_offsets,
    parse_operator_metadata,
    parse_query_metadata,
)
from airflow_checkpoint_provider.exceptions import CorruptCheckpointError, UnsupportedLogVersionError
from tests.support.crafted import commit_text, offsets_text


def test_offsets_v1_keeps_source_order_and_void_offsets() -> None:
    entry = parse_offsets(offsets_text([30, None, 7]), 4, "/cp/offsets/4")
    assert entry.log_version == 1
    assert entry.end_offsets == ('{"offset": 30}', None, '{"offset": 7}')
    assert entry.end_offsets_json() == [{"offset": 30}, None, {"offset": 7}]
    assert entry.source_ids == ("0", "1", "2")
    assert entry.batch_timestamp_ms == 1_700_000_000_000
    assert entry.watermark_ms == 0


def test_offsets_v2_is_ordered_by_source_id() -> None:
    # Spark 4.3 writes v2 source lines in no particular order (seen: "1:..." before "0:...").
    text = (
        'v2\n{"batchWatermarkMs":5,"batchTimestampMs":9,"conf":{},"sourceMetadataInfo":{}}\n'
        '1:{"offset": 15}\n0:-'
    )
    entry = parse_offsets(text, 2, "/cp/offsets/2")
    assert entry.log_version == 2
    assert entry.source_ids == ("0", "1")
    assert entry.end_offsets == (None, '{"offset": 15}')
    assert entry.watermark_ms == 5


def test_offsets_without_metadata_json_line_is_allowed() -> None:
    # Very old checkpoints wrote an empty metadata line.
    entry = parse_offsets('v1\n\n{"offset": 3}', 0, "/cp/offsets/0")
    assert entry.end_offsets_json() == [{"offset": 3}]
    assert entry.batch_timestamp_ms is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", CorruptCheckpointError),
        ("garbage", CorruptCheckpointError),
        ("v1\n{not json", CorruptCheckpointError),
        ("v1\n[1,2]", CorruptCheckpointError),
        ("v2\n{}\nno-colon-here", CorruptCheckpointError),
        ("v3\n{}\n0:{}", UnsupportedLogVersionError),
        ("v9\n{}", UnsupportedLogVersionError),
    ],
)
def test_bad_offset_files_name_the_file(text: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        parse_offsets(text, 7, "/cp/offsets/7")
    assert "/cp/offsets/7" in str(info.value)
    assert info.value.path == "/cp/offsets/7"  # type: ignore[attr-defined]


def test_commit_versions() -> None:
    v1 = parse_commit(commit_text(1), 3, "/cp/commits/3")
    v2 = parse_commit(commit_text(2), 3, "/cp/commits/3")
    assert (v1.log_version, v1.has_state_unique_ids, v1.next_watermark_ms) == (1, False, 0)
    assert (v2.log_version, v2.has_state_unique_ids) == (2, True)
    with pytest.raises(UnsupportedLogVersionError, match="/cp/commits/3"):
        parse_commit("v7\n{}", 3, "/cp/commits/3")


def test_query_metadata() -> None:
    assert parse_query_metadata('{"id":"abc"}', "/cp/metadata") == "abc"
    for bad in ("", "{}", "[]", '{"id": 3}', "{oops"):
        with pytest.raises(CorruptCheckpointError, match="/cp/metadata"):
            parse_query_metadata(bad, "/cp/metadata")


def test_operator_metadata_v1_and_v2() -> None:
    v1 = parse_operator_metadata(
        'v1\n{"operatorInfo":{"operatorId":0,"operatorName":"stateStoreSave"},'
        '"stateStoreInfo":[{"storeName":"default","numColsPrefixKey":0,"numPartitions":3}]}',
        "/m",
    )
    assert (v1.version, v1.operator_id, v1.name, v1.num_partitions, v1.stores) == (
        1,
        0,
        "stateStoreSave",
        3,
        ("default",),
    )
    v2 = parse_operator_metadata(
        'v2\n{"operatorInfo":{"operatorId":1,"operatorName":"transformWithStateInPySparkExec"},'
        '"stateStoreInfo":[{"storeName":"default","numColsPrefixKey":0,"numPartitions":4}],'
        '"operatorPropertiesJson":"{\\"stateVariables\\":[{\\"stateName\\":\\"counts\\"},{\\"stateName\\":\\"max\\"}]}"}',
        "/m",
    )
    assert (v2.version, v2.num_partitions, v2.state_variables) == (2, 4, ("counts", "max"))

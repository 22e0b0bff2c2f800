"""Parsers for the files of a Spark Structured Streaming checkpoint (pure functions over text).

Formats, as Spark 4.x writes them (as read from checkpoints that real Spark 4.3 wrote, see
tests/support/spark_checkpoints.py):

- ``metadata``: ``{"id": "<query id>"}``.
- ``offsets/<n>``: ``v1`` or ``v2``; a JSON line (``batchWatermarkMs``, ``batchTimestampMs``, ``conf``, and
  in v2 ``sourceMetadataInfo``); then one line per source: v1 the offset JSON or ``-``; v2
  ``<source id>:<json or ->``, in no particular order.
- ``commits/<n>``: ``v1`` or ``v2`` (checkpoint format v2) and a JSON line (``nextBatchWatermarkMs``, and in
  v2 ``stateUniqueIds``).
- ``state/<op>/_metadata/metadata`` (v1) or ``state/<op>/_metadata/v2/<batch>`` (v2): a version line and a
  JSON line with ``operatorInfo``, ``stateStoreInfo`` and, in v2, ``operatorPropertiesJson``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from airflow_checkpoint_provider.exceptions import CorruptCheckpointError, UnsupportedLogVersionError

OFFSET_LOG_VERSIONS = (1, 2)
COMMIT_LOG_VERSIONS = (1, 2)
OPERATOR_METADATA_VERSIONS = (1, 2)
VOID_OFFSET = "-"


@dataclass(frozen=True)
class BatchOffsets:
    """The content of ``offsets/<batch>``: where each source ends for that batch."""

    batch_id: int
    log_version: int
    batch_timestamp_ms: int | None
    watermark_ms: int | None
    conf: dict[str, str] = field(repr=False)
    #: Per source, in source order: the end-offset JSON exactly as Spark wrote it, or None for ``-``.
    end_offsets: tuple[str | None, ...]
    #: Source ids in the same order (v2 logs name them; v1 logs are positional, so "0", "1", ...).
    source_ids: tuple[str, ...]

    def end_offsets_json(self) -> list[Any]:
        """The end offsets parsed as JSON (None where Spark wrote ``-``); an offset that is not JSON (Spark
        stores offsets as opaque strings, and a source may write any) is kept as the string it is."""
        return [None if raw is None else _offset_value(raw) for raw in self.end_offsets]


def _offset_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@dataclass(frozen=True)
class BatchCommit:
    """The content of ``commits/<batch>``."""

    batch_id: int
    log_version: int
    next_watermark_ms: int | None
    has_state_unique_ids: bool


@dataclass(frozen=True)
class OperatorMetadata:
    """What ``state/<op>/_metadata`` says about one stateful operator."""

    version: int
    operator_id: int
    name: str | None
    stores: tuple[str, ...]
    num_partitions: int | None
    state_variables: tuple[str, ...]


def _split_version(text: str, path: str, supported: tuple[int, ...], what: str) -> tuple[int, list[str]]:
    if not text.strip():
        raise CorruptCheckpointError(f"{what} is empty (a torn write?)", path=path)
    lines = text.split("\n")
    head = lines[0].strip()
    if not head.startswith("v") or not head[1:].isdigit():
        raise CorruptCheckpointError(
            f"{what} does not start with a version line like 'v1' (found {head[:40]!r})", path=path
        )
    version = int(head[1:])
    if version not in supported:
        raise UnsupportedLogVersionError(
            f"{what} is format v{version}; this package reads v{', v'.join(map(str, supported))}",
            path=path,
            hint="Upgrade airflow-checkpoint-provider to a release that knows this Spark version's format",
        )
    return version, lines[1:]


def _json_object(raw: str, path: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise CorruptCheckpointError(f"{what} holds invalid JSON: {exc}", path=path) from exc
    if not isinstance(value, dict):
        raise CorruptCheckpointError(
            f"{what} should hold a JSON object, found {type(value).__name__}", path=path
        )
    return value


def _opt_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_query_metadata(text: str, path: str) -> str:
    """Return the query id from a checkpoint's ``metadata`` file."""
    data = _json_object(text.strip() or "null", path, "checkpoint metadata")
    query_id = data.get("id")
    if not isinstance(query_id, str) or not query_id:
        raise CorruptCheckpointError("checkpoint metadata has no query id ('id')", path=path)
    return query_id


def parse_offsets(text: str, batch_id: int, path: str) -> BatchOffsets:
    """Parse ``offsets/<batch_id>``."""
    version, rest = _split_version(text, path, OFFSET_LOG_VERSIONS, f"offset log entry {batch_id}")
    if not rest:
        raise CorruptCheckpointError(f"offset log entry {batch_id} has no metadata line", path=path)
    meta_line, source_lines = rest[0].strip(), [line for line in rest[1:] if line.strip()]
    meta = _json_object(meta_line, path, f"offset log entry {batch_id} metadata") if meta_line else {}
    conf = meta.get("conf") or {}
    if not isinstance(conf, dict):
        raise CorruptCheckpointError(f"offset log entry {batch_id}: 'conf' is not an object", path=path)

    ids: list[str] = []
    offsets: list[str | None] = []
    if version == 1:
        for i, line in enumerate(source_lines):
            ids.append(str(i))
            offsets.append(_check_offset(line.strip(), path, batch_id))
    else:
        pairs: list[tuple[str, str | None]] = []
        for line in source_lines:
            source_id, sep, raw = line.partition(":")
            if not sep or not source_id.strip():
                raise CorruptCheckpointError(
                    f"offset log entry {batch_id}: expected '<source id>:<offset>', found {line[:60]!r}",
                    path=path,
                )
            pairs.append((source_id.strip(), _check_offset(raw.strip(), path, batch_id)))
        pairs.sort(key=lambda p: (0, int(p[0]), "") if p[0].isdigit() else (1, 0, p[0]))
        ids = [p[0] for p in pairs]
        offsets = [p[1] for p in pairs]
    return BatchOffsets(
        batch_id=batch_id,
        log_version=version,
        batch_timestamp_ms=_opt_int(meta.get("batchTimestampMs")),
        watermark_ms=_opt_int(meta.get("batchWatermarkMs")),
        conf={str(k): str(v) for k, v in conf.items()},
        end_offsets=tuple(offsets),
        source_ids=tuple(ids),
    )


def _check_offset(raw: str, path: str, batch_id: int) -> str | None:
    if raw == VOID_OFFSET:
        return None
    try:
        json.loads(raw)
    except ValueError:
        # Spark itself stores source offsets as opaque strings; a source may use a non-JSON offset.
        # Keep it verbatim rather than refusing a checkpoint Spark can read.
        pass
    if not raw:
        raise CorruptCheckpointError(f"offset log entry {batch_id} has an empty source line", path=path)
    return raw


def parse_commit(text: str, batch_id: int, path: str) -> BatchCommit:
    """Parse ``commits/<batch_id>``."""
    version, rest = _split_version(text, path, COMMIT_LOG_VERSIONS, f"commit log entry {batch_id}")
    body = rest[0].strip() if rest else ""
    data = _json_object(body, path, f"commit log entry {batch_id}") if body else {}
    return BatchCommit(
        batch_id=batch_id,
        log_version=version,
        next_watermark_ms=_opt_int(data.get("nextBatchWatermarkMs")),
        has_state_unique_ids=bool(data.get("stateUniqueIds")),
    )


def parse_operator_metadata(text: str, path: str) -> OperatorMetadata:
    """Parse a stateful operator's metadata file (v1 or v2)."""
    version, rest = _split_version(text, path, OPERATOR_METADATA_VERSIONS, "operator metadata")
    data = _json_object((rest[0] if rest else "").strip() or "{}", path, "operator metadata")
    info = data.get("operatorInfo") or {}
    stores = data.get("stateStoreInfo") or []
    partitions = {s.get("numPartitions") for s in stores if isinstance(s, dict)}
    variables: tuple[str, ...] = ()
    props = data.get("operatorPropertiesJson")
    if isinstance(props, str) and props:
        try:
            parsed = json.loads(props)
        except ValueError as exc:
            raise CorruptCheckpointError(f"operator properties are invalid JSON: {exc}", path=path) from exc
        variables = tuple(
            str(v.get("stateName")) for v in parsed.get("stateVariables", []) if isinstance(v, dict)
        )
    return OperatorMetadata(
        version=version,
        operator_id=int(info.get("operatorId", -1)),
        name=info.get("operatorName"),
        stores=tuple(str(s.get("storeName")) for s in stores if isinstance(s, dict)),
        num_partitions=partitions.pop() if len(partitions) == 1 and None not in partitions else None,
        state_variables=variables,
    )

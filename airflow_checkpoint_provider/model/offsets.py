"""Mapping a snapshot's recorded end offsets to a new query's starting-offset options.

A checkpoint's ``offsets/N`` holds, per source, the offset *after* the last record of batch N (the next one to
read). A new generation that starts right after batch N passes exactly that as its starting position:

- the shipped ``eventlog`` source: ``{"offset": n}`` -> option ``startingOffset=n``;
- Kafka: the checkpoint's ``{"topic": {"0": 42, "1": 17}}`` is already the JSON form Kafka's
``startingOffsets``
  option takes for specific offsets, so it is passed verbatim (never ``latest``: a batch-0 retry would then
  skip data). Partitions added after the snapshot are absent from it; Kafka starts them at ``earliest`` by
  default — pass them explicitly if that is not what you want.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_checkpoint_provider.exceptions import InvalidLaunchError


def starting_offset_options(source_format: str, offset: Any) -> dict[str, str]:
    """Reader options that start ``source_format`` at the recorded end ``offset`` (None: no option)."""
    if offset is None:
        return {}
    if source_format == "eventlog":
        if not isinstance(offset, dict) or not isinstance(offset.get("offset"), int) or offset["offset"] < 0:
            raise InvalidLaunchError(f'an eventlog offset looks like {{"offset": n}}, got {offset!r}')
        return {"startingOffset": str(offset["offset"])}
    if source_format == "kafka":
        if not isinstance(offset, dict) or not all(isinstance(v, dict) for v in offset.values()):
            raise InvalidLaunchError(
                f"a Kafka offset looks like {{topic: {{partition: offset}}}}, got {offset!r}"
            )
        return {"startingOffsets": json.dumps(offset, separators=(",", ":"), sort_keys=True)}
    raise InvalidLaunchError(
        f"no starting-offset mapping for source format {source_format!r}; pass its options yourself"
    )

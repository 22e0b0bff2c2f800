"""``airflow-checkpoint``: the operator-facing command line.

Subcommands print a readable report, or one JSON object with ``--json``. Exit codes: 0 success, 1 a typed error
(one line on stderr naming the path), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from airflow_checkpoint_provider.exceptions import CheckpointProviderError


def _format_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _offsets_text(offsets: list[Any] | None, ids: list[str]) -> list[str]:
    if not offsets:
        return ["    (no sources)"]
    return [
        f"    source {ids[i] if i < len(ids) else i}: {'-' if o is None else json.dumps(o, separators=(',', ':'))}"
        for i, o in enumerate(offsets)
    ]


def render_inspect(report: dict[str, Any]) -> str:
    """The human-readable form of an inspect report."""
    lines = [
        f"checkpoint            {report['location']}",
        f"query id              {report['query_id']}",
        f"last committed batch  {_or_none(report['last_committed_batch'])}",
        f"in-flight batch       {_or_none(report['in_flight_batch'])}",
        f"retained batches      {_range(report['retained_batches'])}",
        f"batch time            {_format_ms(report['batch_timestamp_ms'])}",
        f"watermark             {_format_ms(report['watermark_ms']) if report['watermark_ms'] else '0 (none)'}",
        f"formats               offset log v{report['offset_log_version'] or '-'}, "
        f"commit log v{report['commit_log_version'] or '-'}, checkpoint format v{report['checkpoint_format_version'] or '-'}",
        f"state store provider  {report['state_store_provider'] or '-'}",
        "end offsets of the last committed batch:",
        *_offsets_text(report["committed_end_offsets"], report["source_ids"]),
    ]
    if report["in_flight_batch"] is not None:
        lines.append(f"end offsets planned for in-flight batch {report['in_flight_batch']} (re-run on restart):")
        lines.extend(_offsets_text(report["in_flight_end_offsets"], report["source_ids"]))
    if report["operators"]:
        lines.append("stateful operators:")
        for op in report["operators"]:
            extra = f", state variables: {', '.join(op['state_variables'])}" if op["state_variables"] else ""
            lines.append(f"    {op['id']}: {op['name'] or '?'} ({op['partitions'] or '?'} partitions{extra})")
    else:
        lines.append("stateful operators:   none")
    return "\n".join(lines)


def _or_none(value: Any) -> str:
    return "none" if value is None else str(value)


def _range(value: list[int] | None) -> str:
    return "none" if not value else f"{value[0]}..{value[1]}"


def _cmd_inspect(args: argparse.Namespace) -> int:
    from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint

    report = inspect_checkpoint(args.checkpoint).to_json()
    if args.batch is not None:
        from airflow_checkpoint_provider.checkpoint.inspector import CheckpointReader

        entry = CheckpointReader(args.checkpoint).offsets(args.batch)
        report["requested_batch"] = {
            "batch": args.batch,
            "end_offsets": entry.end_offsets_json(),
            "batch_timestamp_ms": entry.batch_timestamp_ms,
            "watermark_ms": entry.watermark_ms,
        }
    if args.json:
        print(json.dumps(report, sort_keys=False))
    else:
        print(render_inspect(report))
        if args.batch is not None:
            print(f"end offsets of batch {args.batch}:")
            print("\n".join(_offsets_text(report["requested_batch"]["end_offsets"], report["source_ids"])))
    return 0


def _duration(text: str) -> Any:
    """``90s``, ``30m``, ``12h``, ``7d`` -> timedelta."""
    import datetime as dt

    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if len(text) < 2 or text[-1] not in units:
        raise argparse.ArgumentTypeError(f"expected a duration like 30m, 12h or 7d, got {text!r}")
    try:
        return dt.timedelta(**{units[text[-1]]: float(text[:-1])})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}") from exc


def render_snapshots(root: str, entries: list[dict[str, Any]]) -> str:
    if not entries:
        return f"job root {root}: no snapshots"
    lines = [f"job root {root}: {len(entries)} snapshot folder(s), newest first",
             f"  {'id':<32} {'gen':>4} {'batch':>6} {'rows':>10}  {'state':<14} created"]
    for e in entries:
        if not e["complete"]:
            state = "UNFINISHED" if not e.get("error") else "UNREADABLE"
        else:
            state = "deep-verified" if e["deep_verified"] else "verified" if e["verified"] else "unverified"
        lines.append(f"  {e['snapshot_id']:<32} {_or_none(e['generation']):>4} {_or_none(e['batch']):>6} "
                     f"{_or_none(e['rows']):>10}  {state:<14} {e['created_at'] or '-'}")
        if e.get("error"):
            lines.append(f"      {e['error']}")
    return "\n".join(lines)


def _cmd_snapshots(args: argparse.Namespace) -> int:
    from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
    from airflow_checkpoint_provider.checkpoint.snapshots import SnapshotCatalogue, verify_snapshot

    root = JobRoot(args.job_root, job=args.job_name)
    catalogue = SnapshotCatalogue(root)
    result: dict[str, Any] = {"job_root": root.location.uri, "job": root.job}
    if args.verify is not None:
        ids = [args.verify] if args.verify else [e.snapshot_id for e in catalogue.list() if e.complete]
        result["verified"] = [verify_snapshot(root, i).to_json() for i in ids]
    if args.keep_last is not None or args.max_age is not None:
        plan = (catalogue.apply_retention if args.apply else catalogue.plan_retention)(
            keep_last=args.keep_last, max_age=args.max_age)
        result["retention"] = {**plan.to_json(), "applied": bool(args.apply)}
    entries = [e.to_json() for e in catalogue.list()]
    result["snapshots"] = entries
    if args.json:
        print(json.dumps(result))
        return 0
    print(render_snapshots(root.location.uri, entries))
    for v in result.get("verified", []):
        print(f"verified {v['snapshot_id']}: {v['files']} files, {v['rows']} rows, {v['bytes']} bytes")
    if "retention" in result:
        r = result["retention"]
        verb = "deleted" if r["applied"] else "would delete (dry run; add --apply)"
        for sid in r["delete"]:
            print(f"{verb} {sid}: {r['reasons'][sid]}")
        if not r["delete"]:
            print("retention: nothing to delete")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-checkpoint",
        description="Inspect and manage Spark Structured Streaming checkpoints, job roots and snapshots.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser("inspect", help="report where a checkpoint stands (no JVM needed)")
    inspect.add_argument("checkpoint", help="checkpoint folder: a path or URI (file://, s3://, ...)")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.add_argument("--batch", type=int, help="also show the end offsets of this retained batch")
    inspect.set_defaults(func=_cmd_inspect)
    snaps = sub.add_parser("snapshots", help="list, verify and retire a job's snapshots (no JVM needed)")
    snaps.add_argument("job_root", help="the job root: a path or URI")
    snaps.add_argument("--job-name", help="the job's name (default: the job root's last path element)")
    snaps.add_argument("--json", action="store_true", help="print one JSON object")
    snaps.add_argument("--verify", nargs="?", const="", metavar="ID",
                       help="re-check files, checksums and row counts (one snapshot, or every complete one)")
    snaps.add_argument("--keep-last", type=int, metavar="N", help="retention: keep the newest N snapshots")
    snaps.add_argument("--max-age", type=_duration, metavar="AGE", help="retention: drop snapshots older (7d, 12h)")
    snaps.add_argument("--apply", action="store_true", help="delete what retention selects (default: dry run)")
    snaps.set_defaults(func=_cmd_snapshots)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CheckpointProviderError as exc:
        print(f"airflow-checkpoint: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

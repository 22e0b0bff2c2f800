"""``airflow-checkpoint``: the operator-facing command line.

Subcommands print a readable report, or one JSON object with ``--json``. Exit codes: 0 success, 1 a typed
error (one line on stderr naming the path), 2 bad usage.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_checkpoint_provider.exceptions import CheckpointProviderError

if TYPE_CHECKING:
    from rich.table import Table

#: Wide enough that snapshot ids and code versions never wrap.
TABLE_WIDTH = 160


def _format_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _offsets_text(offsets: list[Any] | None, ids: list[str]) -> list[str]:
    if not offsets:
        return ["    (no sources)"]
    return [
        f"    source {ids[i] if i < len(ids) else i}: "
        f"{'-' if o is None else json.dumps(o, separators=(',', ':'))}"
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
        "watermark             "
        f"{_format_ms(report['watermark_ms']) if report['watermark_ms'] else '0 (none)'}",
        f"formats               offset log v{report['offset_log_version'] or '-'}, "
        f"commit log v{report['commit_log_version'] or '-'}, checkpoint format "
        f"v{report['checkpoint_format_version'] or '-'}",
        f"state store provider  {report['state_store_provider'] or '-'}",
        "end offsets of the last committed batch:",
        *_offsets_text(report["committed_end_offsets"], report["source_ids"]),
    ]
    if report["in_flight_batch"] is not None:
        lines.append(
            f"end offsets planned for in-flight batch {report['in_flight_batch']} (re-run on restart):"
        )
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
    from airflow_checkpoint_provider.model.decisions import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _table(*columns: str, right: Sequence[str] = ()) -> Table:
    """A plain rich table with these columns (those named in ``right`` right-aligned)."""
    from rich.box import SIMPLE
    from rich.table import Table

    table = Table(box=SIMPLE, show_edge=False)
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left")
    return table


def _table_text(table: Table) -> str:
    """A rich table as plain text (no colour codes: the CLI's output is read by people and by scripts)."""
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=TABLE_WIDTH, color_system=None, force_terminal=False).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip().splitlines())


def _snapshot_state(e: dict[str, Any]) -> str:
    if not e["complete"]:
        return "UNFINISHED" if not e.get("error") else "UNREADABLE"
    return "deep-verified" if e["deep_verified"] else "verified" if e["verified"] else "unverified"


def render_snapshots(root: str, entries: list[dict[str, Any]]) -> str:
    if not entries:
        return f"job root {root}: no snapshots"
    table = _table("id", "gen", "batch", "rows", "state", "created", right=("gen", "batch", "rows"))
    for e in entries:
        table.add_row(
            e["snapshot_id"],
            _or_none(e["generation"]),
            _or_none(e["batch"]),
            _or_none(e["rows"]),
            _snapshot_state(e),
            e["created_at"] or "-",
        )
    lines = [f"job root {root}: {len(entries)} snapshot folder(s), newest first", _table_text(table)]
    lines += [f"  {e['snapshot_id']}: {e['error']}" for e in entries if e.get("error")]
    return "\n".join(lines)


def _cmd_snapshots(args: argparse.Namespace) -> int:
    from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
    from airflow_checkpoint_provider.checkpoint.snapshots import SnapshotCatalogue, verify_snapshot

    root = JobRoot(args.job_root, job=args.job_name).require_job()
    catalogue = SnapshotCatalogue(root)
    result: dict[str, Any] = {"job_root": root.location.uri, "job": root.job}
    if args.verify is not None:
        ids = [args.verify] if args.verify else [e.snapshot_id for e in catalogue.list() if e.complete]
        result["verified"] = [verify_snapshot(root, i).to_json() for i in ids]
    if args.keep_last is not None or args.max_age is not None:
        plan = (catalogue.apply_retention if args.apply else catalogue.plan_retention)(
            keep_last=args.keep_last, max_age=args.max_age
        )
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


def render_status(report: dict[str, Any]) -> str:
    lines = [
        f"job {report['job']} at {report['job_root']}",
        f"current generation  {_or_none(report['current_generation'])}",
    ]
    lease = report["lease"]
    lines.append(
        "lease               "
        + (
            "free"
            if lease is None
            else f"held by {lease['holder']} ({lease['operation']}, {lease['expires_in_s']}s left)"
        )
    )
    table = _table(
        "",
        "gen",
        "state",
        "batch",
        "heartbeat",
        "code version",
        "started from",
        right=("gen", "batch", "heartbeat"),
    )
    errors = []
    for g in report["generations"]:
        age = "-" if g["heartbeat_age_s"] is None else f"{g['heartbeat_age_s']}s"
        table.add_row(
            "*" if g["current"] else "",
            str(g["generation"]),
            g["state"] + (" (rolled back)" if g.get("rolled_back_to") is not None else ""),
            _or_none(g["last_committed_batch"]),
            age,
            g["code_version"] or "-",
            g["snapshot"] or "-",
        )
        if g.get("rolled_back_to") is not None:
            errors.append(
                f"  generation {g['generation']} was rolled back: generation {g['rolled_back_to']} runs the "
                "previous code again from the snapshot it started from"
            )
        if g.get("settings"):
            change = g["settings"]
            errors.append(
                f"  generation {g['generation']} was restarted in place with new settings by "
                f"{change['applied_by']}"
                + ("; they were reverted (it runs its previous settings)" if change["reverted_at"] else "")
            )
        if g.get("adopted"):
            errors.append(
                f"  generation {g['generation']} runs on its dry run's driver, adopted as its warm standby"
            )
        if g["driver"] and g["driver"]["error"] and g["state"] in ("FAILED", "DEAD"):
            errors.append(f"  generation {g['generation']} error: {g['driver']['error'][:300]}")
    lines += [_table_text(table), *errors]
    lines.append(render_snapshots(report["job_root"], report["snapshots"]))
    return "\n".join(lines)


def _cmd_status(args: argparse.Namespace) -> int:
    from airflow_checkpoint_provider.checkpoint.report import job_status

    report = job_status(args.job_root, args.job_name)
    print(json.dumps(report) if args.json else render_status(report))
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
    from airflow_checkpoint_provider.checkpoint.upgrade import make_plan

    conf = {}
    for item in args.conf or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--conf wants KEY=VALUE, got {item!r}")
        conf[key] = value
    plan = make_plan(
        JobRoot(args.job_root, job=args.job_name),
        application=args.application,
        code_version=args.code_version,
        application_args=args.application_args or [],
        conf=conf,
        intent=args.intent,
        migration=args.migration,
    )
    if args.json:
        print(json.dumps(plan.to_json()))
    else:
        print(plan.reason)
        for kind, lines in (("change", plan.changes), ("check", plan.checks), ("refused", plan.refusals)):
            for line in lines:
                print(f"  {kind}: {line}")
    return 1 if plan.action.value == "refuse" else 0


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
    snaps.add_argument(
        "--verify",
        nargs="?",
        const="",
        metavar="ID",
        help="re-check files, checksums and row counts (one snapshot, or every complete one)",
    )
    snaps.add_argument("--keep-last", type=int, metavar="N", help="retention: keep the newest N snapshots")
    snaps.add_argument(
        "--max-age", type=_duration, metavar="AGE", help="retention: drop snapshots older (7d, 12h)"
    )
    snaps.add_argument(
        "--apply", action="store_true", help="delete what retention selects (default: dry run)"
    )
    snaps.set_defaults(func=_cmd_snapshots)
    status = sub.add_parser(
        "status", help="a job's generations, driver states, batches, heartbeats, snapshots"
    )
    status.add_argument("job_root", help="the job root: a path or URI")
    status.add_argument("--job-name", help="the job's name (default: the job root's last path element)")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=_cmd_status)
    plan = sub.add_parser(
        "plan", help="what redeploying a job to new code would do; refuses what cannot work (no JVM)"
    )
    plan.add_argument("job_root", help="the job root: a path or URI")
    plan.add_argument("--application", required=True, help="the new application file")
    plan.add_argument("--code-version", default="", help="the new code's label")
    plan.add_argument("--conf", action="append", metavar="KEY=VALUE", help="a Spark conf of the new launch")
    plan.add_argument(
        "--application-args", nargs=argparse.REMAINDER, help="the new launch's own arguments (last)"
    )
    plan.add_argument("--intent", choices=("upgrade", "rotate"), default="upgrade")
    plan.add_argument("--migration", default="auto", help="the migration the new code applies")
    plan.add_argument("--job-name", help="the job's name (default: the job root's last path element)")
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    plan.set_defaults(func=_cmd_plan)
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

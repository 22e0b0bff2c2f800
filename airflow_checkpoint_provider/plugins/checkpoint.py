"""The provider's page in Airflow's UI: the streaming jobs it watches, their health, generations and
snapshots.

A FastAPI app mounted by the api-server at ``/checkpoint`` (Airflow 3's plugin interface), shown in the UI's
navigation as an external view. Read-only; every page and JSON endpoint reads through the same job-root report
as ``airflow-checkpoint status`` (``checkpoint/report.py``) and requires an Airflow login (a bearer token or
the UI's session cookie). The jobs are the job roots listed in the ``[checkpoint_provider] job_roots`` option
(comma or newline separated). The api-server must reach them with the same storage settings as the workers.

=====================================  =====================================================================
``GET /checkpoint/``                   the jobs: health, current generation, last batch and its age, lag,
                                       lease holder
``GET /checkpoint/jobs/<job>``         one job: generations as a timeline, snapshots, the last driver error
``GET /checkpoint/api/jobs``           the jobs as JSON
``GET /checkpoint/api/jobs/<job>``     one job's report as JSON (what ``airflow-checkpoint status --json``
                                       prints)
=====================================  =====================================================================
"""

from __future__ import annotations

import html
import time
from typing import Any
from urllib.parse import quote

from airflow.api_fastapi.core_api.security import requires_authenticated
from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from airflow_checkpoint_provider.exceptions import CheckpointProviderError

#: The config section and option that list the job roots the page watches.
SECTION, OPTION = "checkpoint_provider", "job_roots"
URL_PREFIX = "/checkpoint"


def job_roots() -> dict[str, str]:
    """The watched jobs, name -> job root (a name shared by two roots gets a numeric suffix)."""
    from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot

    raw = conf.get(SECTION, OPTION, fallback="") or ""
    found: dict[str, str] = {}
    for item in raw.replace("\n", ",").split(","):
        location = item.strip()
        if not location:
            continue
        name = JobRoot(location).job
        unique, n = name, 1
        while unique in found:
            n += 1
            unique = f"{name}-{n}"
        found[unique] = location
    return found


def report(name: str) -> dict[str, Any]:
    """One job's report, or its error as a report (a job root the api-server cannot read is shown, not
    hidden)."""
    from airflow_checkpoint_provider.checkpoint.report import job_status

    roots = job_roots()
    if name not in roots:
        raise HTTPException(status_code=404, detail=f"no watched job {name!r}")
    try:
        return {"name": name, **job_status(roots[name], name)}
    except CheckpointProviderError as exc:
        return {"name": name, "job_root": roots[name], "error": f"{type(exc).__name__}: {exc}"}


def summary(full: dict[str, Any]) -> dict[str, Any]:
    """The one-line view of a job for the list."""
    if "error" in full:
        return {
            "name": full["name"],
            "job_root": full["job_root"],
            "health": "UNREADABLE",
            "error": full["error"],
        }
    current = next((g for g in full["generations"] if g["current"]), None)
    lease = full["lease"]
    return {
        "name": full["name"],
        "job_root": full["job_root"],
        "health": current["state"] if current else "NO GENERATION",
        "current_generation": full["current_generation"],
        "last_committed_batch": current["last_committed_batch"] if current else None,
        "last_batch_age_s": current["last_batch_age_s"] if current else None,
        "lag": current["lag"] if current else None,
        "lease_holder": lease["holder"] if lease else None,
        "snapshots": len(full["snapshots"]),
    }


app = FastAPI(title="Checkpointed streaming jobs", dependencies=[Depends(requires_authenticated())])


@app.get("/api/jobs")
def api_jobs() -> list[dict[str, Any]]:
    return [summary(report(name)) for name in job_roots()]


@app.get("/api/jobs/{name}")
def api_job(name: str) -> dict[str, Any]:
    return report(name)


@app.get("/", response_class=HTMLResponse)
def jobs_page() -> str:
    rows = [summary(report(name)) for name in job_roots()]
    body = _table(
        ["job", "health", "generation", "last batch", "batch age", "lag", "lease held by", "snapshots"],
        [
            [
                f'<a href="{URL_PREFIX}/jobs/{quote(r["name"], safe="")}">{_e(r["name"])}</a>'
                f"<br><small>{_e(r['job_root'])}</small>",
                _badge(r["health"]),
                _e(r.get("current_generation")),
                _e(r.get("last_committed_batch")),
                _seconds(r.get("last_batch_age_s")),
                _e(r.get("lag")),
                _e(r.get("lease_holder") or "free"),
                _e(r.get("snapshots")),
            ]
            for r in rows
        ],
    )
    if not rows:
        body = f"<p>No jobs are watched: list job roots in <code>[{SECTION}] {OPTION}</code>.</p>"
    return _page("Streaming jobs", body)


@app.get("/jobs/{name}", response_class=HTMLResponse)
def job_page(name: str) -> str:
    full = report(name)
    if "error" in full:
        return _page(name, f'<p class="error">{_e(full["error"])}</p>')
    generations = _table(
        ["generation", "state", "code version", "started", "started from", "batches", "stopped", "downtime"],
        [
            [
                _e(g["generation"]) + (" (current)" if g["current"] else ""),
                _badge(g["state"])
                + (
                    f" rolled back, replaced by {_e(g['rolled_back_to'])}"
                    if g.get("rolled_back_to") is not None
                    else ""
                )
                + (" adopted dry run" if g.get("adopted") else "")
                + (
                    (" settings reverted" if g["settings"]["reverted_at"] else " new settings")
                    if g.get("settings")
                    else ""
                ),
                _e(g["code_version"] or "-"),
                _when(g["started_at"]),
                _e(g["snapshot"] or "-"),
                _e(g["last_committed_batch"]),
                _stopped(g["stop"]),
                _seconds(g["downtime_s"]),
            ]
            for g in reversed(full["generations"])
        ],
    )
    snapshots = _table(
        ["snapshot", "generation", "batch", "rows", "state", "created"],
        [
            [
                _e(s["snapshot_id"]),
                _e(s["generation"]),
                _e(s["batch"]),
                _e(s["rows"]),
                _badge(_snapshot_state(s)),
                _e(s["created_at"] or "-"),
            ]
            for s in full["snapshots"]
        ],
    )
    errors = [g for g in full["generations"] if g["driver"] and g["driver"]["error"]]
    last_error = (
        f'<h2>Last driver error</h2><p class="error">generation {_e(errors[-1]["generation"])}: '
        f"{_e(errors[-1]['driver']['error'])}</p>"
        if errors
        else ""
    )
    lease = full["lease"]
    head = (
        f"<p>{_e(full['job_root'])} · lease "
        f"{_e(lease['holder'] + ' (' + lease['operation'] + ')') if lease else 'free'}</p>"
    )
    return _page(
        f"Job {name}",
        f"{head}<h2>Generations</h2>{generations}<h2>Snapshots</h2>{snapshots}{last_error}",
    )


def _e(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f} s"


def _when(epoch: Any) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(epoch)))


def _stopped(stop: dict[str, Any] | None) -> str:
    if not stop:
        return "-"
    return _e(
        f"{stop['outcome']} at batch {stop['final_committed_batch']} ({stop['stop_latency_s']:.2f} s)"
        if stop.get("stop_latency_s") is not None
        else stop["outcome"]
    )


def _snapshot_state(entry: dict[str, Any]) -> str:
    if not entry["complete"]:
        return "UNFINISHED" if not entry.get("error") else "UNREADABLE"
    return "deep-verified" if entry["deep_verified"] else "verified" if entry["verified"] else "unverified"


COLOURS = {"RUNNING": "#2e7d32", "verified": "#2e7d32", "deep-verified": "#2e7d32", "STOPPED": "#546e7a"}


def _badge(state: Any) -> str:
    colour = COLOURS.get(
        str(state), "#c62828" if str(state) in ("DEAD", "FAILED", "UNREADABLE") else "#6d4c41"
    )
    return f'<span class="badge" style="background:{colour}">{_e(state)}</span>'


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, body: str) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{_e(title)}</title><style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2933; }}
table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; }}
th, td {{ text-align: left; padding: .35rem .8rem; border-bottom: 1px solid #e4e7eb; vertical-align: top; }}
th {{ background: #f5f7fa; }} small {{ color: #616e7c; }} .error {{ color: #c62828; }}
.badge {{ color: white; border-radius: .6rem; padding: .1rem .55rem; font-size: .85em; }}
</style></head><body><h1>{_e(title)}</h1>{body}
<p><small><a href="{URL_PREFIX}/">all jobs</a> · read-only · airflow-checkpoint-provider</small></p>
</body></html>"""


class CheckpointJobsPlugin(AirflowPlugin):
    """Registers the page with the api-server and a link in the UI's navigation."""

    name = "checkpoint_jobs"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Checkpointed streaming jobs"}]
    external_views = [
        {
            "name": "Streaming jobs",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "checkpoint-jobs",
        }
    ]

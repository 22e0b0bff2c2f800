"""The job ledger (``<job root>/job.json``): current generation, history, and the lease (pure data +
decisions).

The lease makes lifecycle operations on one job mutually exclusive: a redeploy DAG run holds it from its stop
to its start, so a second redeploy (or a restart callback) fails fast naming the holder instead of
interleaving. A holder may take it again (a retried task, the next task of the same run); a lease past its
expiry is free.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Lease:
    holder: str
    operation: str
    acquired_at: float
    expires_at: float

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at

    def describe(self, now: float | None = None) -> str:
        left = self.expires_at - (time.time() if now is None else now)
        return f"{self.holder!r} ({self.operation}, expires in {max(0.0, left):.0f}s)"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lease:
        return cls(
            holder=str(data["holder"]),
            operation=str(data.get("operation", "")),
            acquired_at=float(data.get("acquired_at", 0)),
            expires_at=float(data.get("expires_at", 0)),
        )


@dataclass(frozen=True, slots=True)
class Ledger:
    job: str
    current_generation: int | None = None
    lease: Lease | None = None
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    #: Per lifecycle run (lease holder): the generation it acts on, pinned when it first touched the job, so a
    #: cleared-and-rerun redeploy stops and snapshots the *old* generation again, never the one it created.
    runs: dict[str, int | None] = field(default_factory=dict)
    #: Per lifecycle run: the snapshot ``snapshot="latest"`` resolved to when the run first asked, so a retry
    #: or a rerun starts from the same snapshot even if a newer one appeared since.
    resolved_snapshots: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["history"] = list(self.history)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], job: str) -> Ledger:
        lease = data.get("lease")
        current = data.get("current_generation")
        return cls(
            job=str(data.get("job") or job),
            current_generation=None if current is None else int(current),
            lease=Lease.from_json(lease) if isinstance(lease, dict) else None,
            history=tuple(h for h in data.get("history", []) if isinstance(h, dict)),
            runs={str(k): (None if v is None else int(v)) for k, v in (data.get("runs") or {}).items()},
            resolved_snapshots={str(k): str(v) for k, v in (data.get("resolved_snapshots") or {}).items()},
        )


def lease_blocker(lease: Lease | None, holder: str, now: float) -> Lease | None:
    """The lease that stops ``holder`` from acting now, or None if it may take (or renew) the lease."""
    if lease is None or lease.holder == holder or lease.expired(now):
        return None
    return lease

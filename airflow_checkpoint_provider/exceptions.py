"""The package's whole error vocabulary.

Every error derives from :class:`CheckpointProviderError` and also from the builtin it means, so callers
can catch either. ``terminal`` says whether retrying can help: a corrupt checkpoint stays corrupt, a storage
hiccup may pass. Messages name the job, generation, batch and path involved, and the next step.
"""

from __future__ import annotations


class CheckpointProviderError(Exception):
    """Root of every error raised by airflow-checkpoint-provider."""

    #: Retrying the same step cannot succeed (Airflow operators turn these into AirflowFailException).
    terminal: bool = True

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        job: str | None = None,
        generation: int | None = None,
        batch: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.job = job
        self.generation = generation
        self.batch = batch
        self.hint = hint
        context = [
            f"{name}={value}"
            for name, value in (("job", job), ("generation", generation), ("batch", batch), ("path", path))
            if value is not None
        ]
        text = message
        if context:
            text += f" [{', '.join(context)}]"
        if hint:
            text += f". {hint}"
        super().__init__(text)


# --- locations and checkpoints -------------------------------------------------------------------------


class InvalidLocationError(CheckpointProviderError, ValueError):
    """A path or URI that cannot be used: empty, unknown scheme, or outside the job root."""


class CheckpointNotFoundError(CheckpointProviderError, FileNotFoundError):
    """Nothing exists at the given checkpoint location."""


class EmptyCheckpointError(CheckpointProviderError, ValueError):
    """The checkpoint folder exists but holds nothing: no query has started on it yet."""


class NotACheckpointError(CheckpointProviderError, ValueError):
    """The folder is not a Spark Structured Streaming checkpoint."""


class JobRootNotCheckpointError(NotACheckpointError):
    """The folder is a job root (it holds job.json / generations/), not a checkpoint."""


class SnapshotNotCheckpointError(NotACheckpointError):
    """The folder is a snapshot (it holds manifest.json), not a checkpoint."""


class JobRootNotFoundError(CheckpointProviderError, FileNotFoundError):
    """Nothing exists at the given job root (only a job's first start creates one)."""


class NotAJobRootError(CheckpointProviderError, ValueError):
    """The folder exists but is not a job root: no ``job.json``, ``generations/`` or ``snapshots/``."""


class CorruptCheckpointError(CheckpointProviderError, ValueError):
    """A checkpoint log file exists but cannot be parsed."""


class UnsupportedLogVersionError(CheckpointProviderError, ValueError):
    """A checkpoint log file was written in a format version this package does not understand."""


class FolderNotFileError(CheckpointProviderError, IsADirectoryError):
    """A folder stands where a file belongs."""


class FileTooLargeError(CheckpointProviderError, ValueError):
    """A file is far larger than any record, control file or checkpoint log: it is not read."""


class StorageUnavailableError(CheckpointProviderError, OSError):
    """Storage could not be read or written; retrying may help."""

    terminal = False


# --- the driver-side runtime -------------------------------------------------------------------------


class InvalidLaunchError(CheckpointProviderError, ValueError):
    """The launch contract passed to a managed driver is missing or malformed."""


class SnapshotNotFoundError(CheckpointProviderError, FileNotFoundError):
    """A fresh start names a snapshot that does not exist (or has no manifest)."""


class ForeignSnapshotError(CheckpointProviderError, ValueError):
    """A snapshot belongs to another job, or does not match what the start was asked to do."""


class OffsetsMismatchError(CheckpointProviderError, ValueError):
    """Starting offsets passed to a fresh start disagree with the snapshot's end offsets."""


class FencedError(CheckpointProviderError, RuntimeError):
    """This driver may not run: another live driver holds the generation, or the generation is superseded."""


class CodeChangedError(CheckpointProviderError, RuntimeError):
    """A resume with code other than the code that wrote the checkpoint (promise 3): the application's files
    digest differently from the ones recorded at the generation's first start. Redeploy through a snapshot."""


class LaunchTargetError(CheckpointProviderError, ValueError):
    """A relaunch cannot run where the generation ran: its recorded target is unknown, unreachable, or not
    the one the caller named. A resume never falls back to another engine."""


class InvalidTriggerPayloadError(CheckpointProviderError, TypeError):
    """A trigger was given arguments of the wrong kind (its serialized payload was damaged)."""


class ControlFileError(CheckpointProviderError, ValueError):
    """A control request (e.g. stop) under the job root cannot be read."""


# --- snapshots -----------------------------------------------------------------------------------------


class BatchNotRetainedError(CheckpointProviderError, LookupError):
    """The batch to snapshot is not committed, or its logs were purged (``minBatchesToRetain``)."""


class SnapshotCorruptError(CheckpointProviderError, ValueError):
    """A snapshot's files disagree with its manifest: missing, truncated, extra, checksum or row-count
    mismatch."""


class SnapshotSchemaMismatchError(CheckpointProviderError, TypeError):
    """A snapshot part's columns do not match what the new code declares, and no migration was given."""


class SnapshotProtectedError(CheckpointProviderError, PermissionError):
    """Deleting this snapshot would remove the job's newest verified one, or one a kept generation started
    from."""


class ExportFailedError(CheckpointProviderError, RuntimeError):
    """Spark could not read or write the state for a snapshot (the partial folder was removed)."""

    terminal = False


class StateNotExportableError(CheckpointProviderError, RuntimeError):
    """A DStream job's state can be exported only by its own running driver, and that driver is not
    running (or stopped before it answered). Terminal for this task: a later run, once the driver runs again
    (or a stop with ``snapshot=True``), exports it."""


# --- the Airflow lifecycle ------------------------------------------------------------------------------


class LeaseHeldError(CheckpointProviderError, RuntimeError):
    """Another lifecycle operation (a redeploy, a restart) holds the job's lease; this one must not
    interleave."""


class DriverStillRunningError(CheckpointProviderError, RuntimeError):
    """A driver of the generation is (or may be) alive, so its checkpoint must not be retired or replaced.
    Retryable: a driver that is shutting down is gone a moment later."""

    terminal = False


class CleanupRefusedError(CheckpointProviderError, RuntimeError):
    """A checkpoint may not be retired or deleted yet: no graceful stop, or no verified snapshot of its last
    batch."""


class StopTimeoutError(CheckpointProviderError, TimeoutError):
    """The driver did not reach a batch boundary within the stop timeout (and was left running, as
    configured)."""

    terminal = False


class DriverFailedError(CheckpointProviderError, RuntimeError):
    """The driver reported a failure, or its process ended without reporting, while it was being started."""

    terminal = False


class SubmitError(CheckpointProviderError, RuntimeError):
    """spark-submit (or the cluster manager's CLI) failed; the output tail is in the message."""

    terminal = False


class JobUnhealthyError(CheckpointProviderError, RuntimeError):
    """The job's driver is dead or failed (status terminal, or heartbeat older than its lease)."""


class PlanRefusedError(CheckpointProviderError, ValueError):
    """The plan step refused a redeploy before anything ran: the new code cannot take the job's state as it
    is (state shape, sources, migration)."""


class DryRunFailedError(CheckpointProviderError, RuntimeError):
    """The new code failed its dry run on a scratch copy of the job's state: the live job was not touched."""


class NotReadyError(CheckpointProviderError, RuntimeError):
    """A generation failed its readiness window after a cutover (no commits, a failure, a growing lag, or the
    user's check)."""


def error_class(name: str) -> type[CheckpointProviderError] | None:
    """The error class called ``name`` (as a driver writes it in status.json), or None if it is not one of
    ours."""
    found = globals().get(name)
    if isinstance(found, type) and issubclass(found, CheckpointProviderError):
        return found
    return None

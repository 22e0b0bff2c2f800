"""A dry run's driver adopted as the redeploy's standby (runtime/adoption.py), on crafted folders (no JVM):
the launch flag, what an adoption must be to be taken, the wait (adopted, released, refused, timed out), and
that only a dry run's own scratch folder is ever removed. The adoption itself, with real drivers: the good
release of tests/e2e/test_safe_redeploy.py."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.exceptions import InvalidLaunchError
from airflow_checkpoint_provider.model.launch import LaunchSpec, parse_launch_args
from airflow_checkpoint_provider.runtime import adoption


def dry_run(tmp_path: Path, stay: float = 5.0) -> LaunchSpec:
    scratch = tmp_path / "counter" / "scratch" / "dry-run-g2-abcd1234"
    (scratch / "job").mkdir(parents=True)
    (scratch / "output").mkdir()
    return LaunchSpec(
        job_root=str(scratch / "job"),
        generation=2,
        job_name="counter",
        launch_id="L1",
        dry_run_output=str(scratch / "output"),
        stay_as_standby_s=stay,
    )


def standby(tmp_path: Path, **changes: object) -> LaunchSpec:
    spec = LaunchSpec(
        job_root=str(tmp_path / "counter"), generation=2, job_name="counter", launch_id="L1", standby_for=1
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


def test_the_flag_round_trips_and_belongs_to_a_dry_run(tmp_path: Path) -> None:
    spec = dry_run(tmp_path, stay=300)
    assert parse_launch_args(spec.to_args())[0] == spec
    assert "--acp-stay-as-standby-s" not in replace(spec, stay_as_standby_s=0).to_args()
    with pytest.raises(InvalidLaunchError, match="needs a dry run"):
        LaunchSpec(job_root=str(tmp_path), generation=2, stay_as_standby_s=30)
    with pytest.raises(InvalidLaunchError, match="seconds >= 0"):
        replace(spec, stay_as_standby_s=-1)


def test_an_adoption_must_be_a_standby_launch_of_the_same_generation_job_and_launch(tmp_path: Path) -> None:
    dry = dry_run(tmp_path)
    assert adoption.adoption_problem(dry, standby(tmp_path)) is None
    refused = {
        "not a standby launch": standby(tmp_path, standby_for=None),
        "for generation 3": standby(tmp_path, generation=3, standby_for=1),
        "names launch 'L2'": standby(tmp_path, launch_id="L2"),
        "for job 'other'": standby(tmp_path, job_name="other"),
        "the scratch job itself": standby(tmp_path, job_root=dry.job_root),
        "a dry run's": standby(tmp_path, dry_run_output="/x"),
        "not the one this dry run's scratch is in": standby(tmp_path, job_root=str(tmp_path / "other")),
    }
    for why, spec in refused.items():
        assert why in str(adoption.adoption_problem(dry, spec)), why


def test_the_offer_lasts_until_its_time(tmp_path: Path) -> None:
    dry = dry_run(tmp_path, stay=60)
    job = JobRoot(dry.job_root, job="counter")
    assert adoption.read_offer(job, 2, "L1") is None
    adoption.offer(dry, "host:1:abc")
    offered = adoption.read_offer(job, 2, "L1")
    assert offered is not None and offered["driver_id"] == "host:1:abc" and offered["until"] > time.time()
    assert adoption.read_offer(job, 2, "L2") is None  # another launch's offer is not this one's
    adoption.offer(replace(dry, stay_as_standby_s=0.001), "host:1:abc")
    time.sleep(0.01)
    assert adoption.read_offer(job, 2, "L1") is None  # its wait is over
    job.write_json(adoption.adoptable_file(job, 2), {"launch_id": "L1", "until": "soon"})
    assert adoption.read_offer(job, 2, "L1") is None  # a damaged offer is no offer


def later(seconds: float, act: object) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), act()))  # type: ignore[operator]
    thread.start()
    return thread


def test_adopted_the_driver_runs_on_as_the_standby_and_its_scratch_goes(tmp_path: Path) -> None:
    dry = dry_run(tmp_path)
    job = JobRoot(dry.job_root, job="counter")
    wanted = standby(tmp_path)
    writer = later(0.3, lambda: adoption.adopt(job, 2, wanted))
    assert adoption.await_adoption(dry) == wanted
    writer.join()
    assert not (tmp_path / "counter" / "scratch").exists()  # its scratch folder, and the empty scratch/


@pytest.mark.parametrize(
    "answer",
    [
        lambda job, tmp: adoption.release(job, 2, "the dry run's check failed"),
        lambda job, tmp: adoption.adopt(job, 2, standby(tmp, launch_id="L2")),  # refused: not this launch
        lambda job, tmp: job.write_json(adoption.adopt_file(job, 2), {"argv": "--acp-job-root x"}),
        lambda job, tmp: job.write_json(adoption.adopt_file(job, 2), {"argv": ["--acp-generation", "2"]}),
    ],
    ids=["released", "another launch", "no list", "bad flags"],
)
def test_released_or_refused_it_exits_and_its_scratch_goes(tmp_path: Path, answer: object) -> None:
    dry = dry_run(tmp_path)
    job = JobRoot(dry.job_root, job="counter")
    (tmp_path / "counter" / "scratch" / "dry-run-g3-other").mkdir()  # another dry run's: left alone
    answer(job, tmp_path)  # type: ignore[operator]
    assert adoption.await_adoption(dry) is None
    assert not Path(dry.job_root).parent.exists()
    assert (tmp_path / "counter" / "scratch" / "dry-run-g3-other").exists()


def test_unadopted_it_exits_when_its_wait_ends(tmp_path: Path) -> None:
    dry = dry_run(tmp_path, stay=0.5)
    started = time.monotonic()
    assert adoption.await_adoption(dry) is None
    assert 0.5 <= time.monotonic() - started < 5
    assert not Path(dry.job_root).parent.exists()


def test_only_a_dry_runs_own_scratch_folder_is_ever_removed(tmp_path: Path) -> None:
    dry = dry_run(tmp_path)
    assert adoption.scratch_of(dry) == Path(dry.job_root).parent
    elsewhere = tmp_path / "data" / "job"
    elsewhere.mkdir(parents=True)
    for spec in (
        replace(
            dry, job_root=str(elsewhere), dry_run_output=str(tmp_path / "data" / "output")
        ),  # no scratch/
        replace(dry, dry_run_output=str(tmp_path / "output")),  # output not beside the job
        replace(dry, stay_as_standby_s=0, dry_run_output=None),  # not a dry run
    ):
        assert adoption.scratch_of(spec) is None
        adoption.remove_scratch(spec)
    assert elsewhere.exists()
    link = tmp_path / "counter" / "scratch" / "dry-run-g9-link"
    link.symlink_to(tmp_path / "data", target_is_directory=True)
    linked = replace(dry, job_root=str(link / "job"), dry_run_output=str(link / "output"))
    assert adoption.scratch_of(linked) is None  # a symlinked scratch folder: not followed, not removed
    adoption.remove_scratch(linked)
    assert elsewhere.exists() and link.is_symlink()


def test_a_new_dry_run_releases_the_ones_still_waiting(tmp_path: Path) -> None:
    """A retried or cleared dry run task: the driver of the earlier try waits to be adopted and holds a JVM.
    The new dry run releases it (only open, unanswered offers; never a symlinked folder)."""
    waiting = dry_run(tmp_path, stay=60)
    adoption.offer(waiting, "host:1:abc")
    scratch = Path(waiting.job_root).parent.parent
    answered = replace(
        waiting,
        job_root=str(scratch / "dry-run-g2-answered" / "job"),
        dry_run_output=str(scratch / "dry-run-g2-answered" / "output"),
    )
    Path(answered.job_root).mkdir(parents=True)
    adoption.offer(answered, "host:2:abc")
    adoption.adopt(JobRoot(answered.job_root), 2, standby(tmp_path))
    elsewhere = tmp_path / "elsewhere" / "dry-run-g2-linked"
    (elsewhere / "job").mkdir(parents=True)
    adoption.offer(replace(waiting, job_root=str(elsewhere / "job")), "host:3:abc")
    (scratch / "dry-run-g2-linked").symlink_to(elsewhere)
    (scratch / "not-a-dry-run").mkdir()

    assert adoption.release_waiting(scratch, "counter", "a new dry run") == [Path(waiting.job_root).parent]
    job = JobRoot(waiting.job_root, job="counter")
    assert job.read_json(adoption.adopt_file(job, 2), what="x") == {
        "release": True,
        "reason": "a new dry run",
        "at": pytest.approx(time.time(), abs=5),
    }
    assert "argv" in JobRoot(answered.job_root).read_json(
        adoption.adopt_file(JobRoot(answered.job_root), 2), what="x"
    )
    assert not adoption.adopt_file(JobRoot(str(elsewhere / "job")), 2).exists()
    assert adoption.release_waiting(scratch, "counter", "again") == []  # answered now
    assert adoption.release_waiting(tmp_path / "missing", "counter", "none") == []

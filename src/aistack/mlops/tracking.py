"""Per-job MLflow runs: the server opens one run per job, logs the job's sampled system metrics
into it, and closes it with the job's final state.

The server puts ``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_TOKEN`` and ``MLFLOW_RUN_ID`` into the
job's environment (see :func:`job_env`), so user code calling ``mlflow.log_*`` (or
``mlflow.start_run()``, which resumes ``MLFLOW_RUN_ID``) lands in that run.

Tags written on every job run::

    aistack.job_id, aistack.project, aistack.inputs   the job and its dataset versions
    aistack.command                                   the job's full command (the ``command``
                                                      param shows its first 250 characters)
    mlflow.user, mlflow.runName                       shown by the MLflow UI
    mlflow.source.git.commit, aistack.git_commit      when the job's code is in a git checkout

Dataset versions are also logged as MLflow run inputs (``log_inputs``), so the UI's
"Datasets used" column and ``run.inputs.dataset_inputs`` list them.
"""

from __future__ import annotations

import hashlib
import logging
import math
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from aistack.errors import ConflictError, ValidationError, short_repr
from aistack.mlops._client import (
    auth_env,
    check_run_id,
    mlflow_errors,
    open_client,
    resolve_tracking_uri,
)
from aistack.mlops.logger import MIN_TIMESTAMP_MS

log = logging.getLogger(__name__)

TAG_JOB_ID = "aistack.job_id"
TAG_PROJECT = "aistack.project"
TAG_INPUTS = "aistack.inputs"
TAG_GIT_COMMIT = "aistack.git_commit"
TAG_COMMAND = "aistack.command"
COMMAND_PARAM_CHARS = 250  # the ``command`` param, a readable column in the runs table
TAG_VALUE_CHARS = 8000  # MLflow's limit on a tag value
PARAM_VALUE_CHARS = 6000  # MLflow's limit on a param value
TAG_MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
DATASET_SOURCE_TYPE = "aistack"
BATCH_LIMIT = 1000  # MLflow's per-request limit on metrics in log_batch
INT64_MAX = 2**63 - 1  # a metric timestamp is an int64 of milliseconds
# a system-metrics sample's t is Unix seconds (time.time()), taken from 1973-03-03 on, as metric
# timestamps are (logger.MIN_TIMESTAMP_MS): below it t is no time since the epoch (1.0, a step,
# time.monotonic()) and would be filed under 1970; from 1e11 on (year 5138) it is milliseconds
MIN_SAMPLE_T_S = MIN_TIMESTAMP_MS / 1000
MAX_SAMPLE_T_S = 1e11

# sample key -> MLflow system metric name (the "System metrics" tab shows the system/ prefix)
SYSTEM_METRICS: dict[str, str] = {
    "cpu_percent": "system/cpu_utilization_percentage",
    "rss_mb": "system/process_memory_rss_megabytes",
    "gpu_util": "system/gpu_utilization_percentage",
    "gpu_mem_mb": "system/gpu_memory_usage_megabytes",
}

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]
FINAL_STATES: tuple[str, ...] = ("FINISHED", "FAILED", "KILLED")


def git_commit(path: str | None = None) -> str | None:
    """The HEAD commit of the git checkout containing ``path`` (None outside git)."""
    try:
        out = subprocess.run(
            ["git", "-C", path or ".", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) == 40 else None


def parse_input(ref: str) -> tuple[str, str]:
    """Split a dataset version reference into (name, version).

    Accepted: ``name@version``, ``name:version``, ``scheme://.../name/version`` or a bare name
    (version "latest").
    """
    ref = ref.strip()
    if not ref:
        raise ValidationError(
            "inputs: empty dataset reference", hint="use NAME@VERSION, e.g. 'webtext@3'"
        )
    if "://" in ref:
        parts = [p for p in ref.split("://", 1)[1].split("/") if p]
        if len(parts) >= 2:
            return parts[-2], parts[-1]
        return (parts[0] if parts else ref), "latest"
    for sep in ("@", ":"):
        if sep in ref:
            name, version = ref.rsplit(sep, 1)
            if name and version:
                return name, version
    return ref, "latest"


def dataset_entities(inputs: Iterable[str]) -> list[Any]:
    """MLflow ``DatasetInput`` entities for aistack dataset version references."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    out = []
    for ref in inputs:
        name, version = parse_input(ref)
        digest = (
            version if len(version) <= 36 else hashlib.sha256(version.encode()).hexdigest()[:36]
        )
        ds = Dataset(
            name=name,
            digest=digest,
            source_type=DATASET_SOURCE_TYPE,
            source=_json({"ref": ref, "name": name, "version": version}),
        )
        out.append(
            DatasetInput(
                dataset=ds,
                tags=[
                    InputTag(key="mlflow.data.context", value="input"),
                    InputTag(key="aistack.version", value=version),
                ],
            )
        )
    return out


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True)


def create_job_run(
    tracking_uri: str,
    *,
    job_id: str,
    name: str,
    project: str,
    user: str,
    inputs: list[str],
    params: dict | None = None,
    token: str | None = None,
    code_dir: str | None = None,
    commit: str | None = None,
    command: str | None = None,
) -> str:
    """Open the MLflow run of a job (experiment = project) and return its run id.

    ``code_dir``: the job's working directory, used to find the git commit (or pass ``commit``).
    ``command`` (or ``params["command"]``): the job's command, kept whole in the
    ``aistack.command`` tag; the ``command`` param holds its first 250 characters, ending
    with "…" when cut. Other param values longer than MLflow's 6,000 characters end with "…".
    """
    from mlflow.entities import Param

    for field, value in (("job_id", job_id), ("project", project), ("user", user)):
        if not value or not str(value).strip():
            raise ValidationError(f"{field}: must not be empty", hint=f"pass the job's {field}")
    if isinstance(inputs, str | bytes) or not isinstance(inputs, Iterable | None):
        # one reference, not a list: each character became a dataset of the run
        raise ValidationError(
            f"inputs: expected a list of dataset references, got {short_repr(inputs)}",
            hint="e.g. inputs=['webtext@3']",
            field="inputs",
        )
    inputs = list(inputs or [])
    datasets = dataset_entities(inputs)
    params = dict(params or {})
    if command is None and "command" in params:
        command = str(params.pop("command") or "")
    commit = commit or (git_commit(code_dir) if code_dir else None)
    tags = {
        TAG_JOB_ID: str(job_id),
        TAG_PROJECT: project,
        TAG_INPUTS: ",".join(inputs or []),
        "mlflow.user": user,
        "mlflow.runName": name or str(job_id),
        "mlflow.source.type": "JOB",
        "mlflow.source.name": f"aistack job {job_id}",
    }
    if command:
        tags[TAG_COMMAND] = shorten(command, TAG_VALUE_CHARS)
        params["command"] = shorten(command, COMMAND_PARAM_CHARS)
    if commit:
        tags[TAG_MLFLOW_GIT_COMMIT] = commit
        tags[TAG_GIT_COMMIT] = commit
    client = open_client(tracking_uri)
    with auth_env(token), mlflow_errors(f"create the MLflow run of job {job_id}"):
        exp = client.get_experiment_by_name(project)
        if exp is None:
            try:
                exp_id = client.create_experiment(project)
            except Exception:  # a concurrent job created it first
                exp = client.get_experiment_by_name(project)
                if exp is None:
                    raise
                exp_id = exp.experiment_id
        else:
            exp_id = exp.experiment_id
        run = client.create_run(exp_id, run_name=name or str(job_id), tags=tags)
        run_id = run.info.run_id
        plist = [Param(str(k), _param_value(v)) for k, v in params.items()]
        for i in range(0, len(plist), 100):  # MLflow limit: 100 params per batch
            client.log_batch(run_id, params=plist[i : i + 100])
        if datasets:
            client.log_inputs(run_id, datasets=datasets)
    log.info("job %s -> MLflow run %s (experiment %s)", job_id, run_id, project)
    return str(run_id)


def shorten(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start ending with "…" (so a
    reader sees it was cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _param_value(v: Any) -> str:
    s = v if isinstance(v, str) else _json(v) if isinstance(v, dict | list) else str(v)
    return shorten(s, PARAM_VALUE_CHARS)


def system_metric_entities(samples: Sequence[Mapping[str, Any]], *, start_s: float) -> list[Any]:
    """Turn sampled job resource use into MLflow metrics.

    ``step`` is whole seconds since ``start_s`` (the run start), so samples sent in several
    calls keep increasing steps; ``timestamp`` is the sample time. GPU values may be one number
    or a list per device (``system/gpu_<i>_...``). Missing or None values are skipped.
    """
    from mlflow.entities import Metric

    out = []
    for i, s in enumerate(samples):
        if not isinstance(s, Mapping):
            raise ValidationError(f"samples[{i}]: expected a mapping, got {type(s).__name__}")
        t = _sample_time(i, s)
        ts = int(t * 1000)
        step = max(0, int(t - start_s))
        for key, metric in SYSTEM_METRICS.items():
            v = s.get(key)
            if v is None:
                continue
            if isinstance(v, list | tuple) and key.startswith("gpu_"):
                kind = metric.split("system/gpu_", 1)[1]
                for dev, dv in enumerate(v):
                    if dv is not None:
                        fv = _num(dv, f"samples[{i}].{key}[{dev}]")
                        out.append(Metric(f"system/gpu_{dev}_{kind}", fv, ts, step))
                continue
            out.append(Metric(metric, _num(v, f"samples[{i}].{key}"), ts, step))
    return out


def _sample_time(i: int, s: Mapping[str, Any]) -> float:
    """``samples[i]``'s t: a finite number of seconds MLflow can store as milliseconds."""
    t = s.get("t")
    if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t):
        raise ValidationError(
            f"samples[{i}].t: must be a unix time in seconds, got {t!r}",
            hint="each sample needs t (float seconds since the epoch)",
        )
    if not 0 <= t * 1000 <= INT64_MAX:  # MLflow refuses it (or SQLite cannot store it)
        raise ValidationError(
            f"samples[{i}].t: {t!r} is not a time MLflow can store (from 1970 on)",
            hint="each sample needs t (float seconds since the epoch, e.g. time.time())",
        )
    return float(t)


def check_sample_times(samples: Sequence[Any]) -> None:
    """Refuse a sample whose t is no plausible Unix time in seconds: before 1973-03-03
    (:data:`MIN_SAMPLE_T_S`; 1.0, a step count or ``time.monotonic()`` was logged as a point
    in January 1970) or from :data:`MAX_SAMPLE_T_S` on (milliseconds, ``time.time() * 1000``,
    was logged as a time thousands of years ahead). Checked before anything is logged."""
    for i, s in enumerate(samples):
        if not isinstance(s, Mapping):
            raise ValidationError(f"samples[{i}]: expected a mapping, got {type(s).__name__}")
        t = _sample_time(i, s)
        if t < MIN_SAMPLE_T_S:
            raise ValidationError(
                f"samples[{i}].t: {t!r} is not Unix seconds (as seconds since the epoch it is "
                "a time in 1970-1973)",
                hint="t is Unix seconds (seconds since 1970-01-01 UTC), e.g. time.time(); "
                "not a step count or time.monotonic()",
                field=f"samples[{i}].t",
            )
        if t >= MAX_SAMPLE_T_S:
            raise ValidationError(
                f"samples[{i}].t: {t!r} reads as milliseconds, not Unix seconds (as seconds "
                "it is a time after the year 5000)",
                hint="t is Unix seconds: divide milliseconds by 1000, e.g. time.time()",
                field=f"samples[{i}].t",
            )


def _num(v: Any, field: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValidationError(f"{field}: must be a finite number, got {v!r}")
    return float(v)


def log_system_metrics(
    tracking_uri: str,
    run_id: str,
    samples: list[dict],
    token: str | None = None,
) -> int:
    """Log sampled system metrics (t, cpu_percent, rss_mb, gpu_util, gpu_mem_mb) into a run,
    in batches of at most 1,000 points. Returns the number of points logged. ``t`` is Unix
    seconds (``time.time()``); a t before 1973 or in milliseconds is a ValidationError (see
    :func:`check_sample_times`) and nothing is logged."""
    check_run_id(run_id)
    if not samples:
        return 0
    check_sample_times(samples)
    client = open_client(tracking_uri)
    with auth_env(token), mlflow_errors(f"log system metrics into run {run_id}"):
        start_s = client.get_run(run_id).info.start_time / 1000.0
        metrics = system_metric_entities(samples, start_s=start_s)
        for i in range(0, len(metrics), BATCH_LIMIT):
            client.log_batch(run_id, metrics=metrics[i : i + BATCH_LIMIT])
    return len(metrics)


def end_job_run(
    tracking_uri: str,
    run_id: str,
    status: RunStatus,
    token: str | None = None,
    *,
    replace: bool = False,
) -> None:
    """Close the job's run with its final state (FINISHED, FAILED or KILLED).

    An ended run keeps its history: ending it again with the status it has does nothing (its
    end time stays), with another status is a ConflictError (the run keeps the status and end
    time it has). A run reopened since it ended is open again and is ended as usual: a
    requeued job (preempted, lost, retried) keeps its run, and its code's
    ``mlflow.start_run()`` resumes ``MLFLOW_RUN_ID``, which sets the run RUNNING; the server
    ends a run only when its job ends for good, never on a requeue.

    ``replace=True`` is the launcher's verdict (the server's, when the job ends): it replaces
    the status the job's own code ended the run with (``with mlflow.start_run():`` ends it
    FINISHED, and the process may fail after that, or be cancelled), as MLflow Projects does
    with the status of the process it ran. The end time the code gave is kept."""
    if status not in FINAL_STATES:
        raise ValidationError(
            f"status: {status!r} is not a final run state",
            hint="use FINISHED, FAILED or KILLED",
        )
    check_run_id(run_id)
    client = open_client(tracking_uri)
    with auth_env(token), mlflow_errors(f"end MLflow run {run_id}"):
        info = client.get_run(run_id).info
        if info.status in FINAL_STATES:
            if info.status == status:
                log.debug("MLflow run %s already ended %s", run_id, status)
                return
            if replace:
                log.info(
                    "MLflow run %s: ended %s by its code, %s by its job",
                    run_id,
                    info.status,
                    status,
                )
                client.set_terminated(run_id, status=status, end_time=info.end_time)
                return
            raise ConflictError(
                f"run {run_id} already ended {info.status} ({_when(info.end_time)}); it is not "
                f"rewritten as {status}",
                hint="an ended run is ended again only after it was reopened "
                f"(mlflow.start_run(run_id={run_id!r}) sets it RUNNING)",
                field="status",
                run_status=info.status,
            )
        client.set_terminated(run_id, status=status, end_time=int(time.time() * 1000))


def _when(end_ms: int | None) -> str:
    """An MLflow end time (ms since the epoch) for a message."""
    import datetime as dt

    if not end_ms:
        return "no end time recorded"
    try:
        at = dt.datetime.fromtimestamp(end_ms / 1000, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return f"end time {end_ms} ms"
    return f"at {at.isoformat(timespec='seconds').replace('+00:00', 'Z')}"


def job_env(tracking_uri: str, run_id: str, token: str | None = None) -> dict[str, str]:
    """Environment variables that route a job's ``mlflow.log_*`` calls into its run."""
    from aistack.mlops.quiet import PROGRESS_BAR_ENV

    env = {
        "MLFLOW_TRACKING_URI": resolve_tracking_uri(tracking_uri),
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # no tqdm bars in the job log for each model logged or artifact downloaded
        PROGRESS_BAR_ENV: "false",
    }
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    return env

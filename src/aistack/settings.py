"""Settings: environment variables with the prefix ``AISTACK_`` (pydantic-settings).

=====================  =====================================  ==============================
variable               meaning                                default
=====================  =====================================  ==============================
AISTACK_HOME           home dir: DB, token, logs, objects     ~/.aistack
AISTACK_DATABASE_URL   SQLAlchemy URL of the metadata DB      sqlite:///$HOME/aistack.db
AISTACK_STORAGE_URL    object store root (file://, s3://, memory://)  $HOME/objects
AISTACK_EXECUTOR       local | ray | slurm | memory           local
AISTACK_URL            the server the CLI/SDK talks to         from $HOME/server.json
AISTACK_HOST/PORT      where ``aistack up`` binds              127.0.0.1:8765
AISTACK_POLICY         scheduling policy (+ _OPTIONS, JSON)    default
=====================  =====================================  ==============================

AISTACK_MAX_REQUEST_BYTES (default 16 MiB) and AISTACK_MAX_MLFLOW_REQUEST_BYTES (under /mlflow,
where one artifact file is one request; default 16 GiB): the largest request body the server
reads; a larger one is answered 413.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AISTACK_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".aistack")
    database_url: str | None = None
    storage_url: str | None = None
    executor: Literal["local", "ray", "slurm", "memory"] = "local"
    url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    token: str | None = Field(default=None, repr=False)  # a secret: not in repr(settings)
    # scheduling loop
    schedule_interval_s: float = 0.2
    monitor_interval_s: float = 2.0
    cancel_grace_s: float = 10.0
    # a job (re)started less than this long ago is not preempted (anti-thrashing)
    preempt_protect_s: float = 60.0
    # scheduling policy name (see aistack.scheduler.policies) and its options, e.g.
    # AISTACK_POLICY_OPTIONS='{"max_wait_factor": 20}' (JSON; unknown options are refused at start)
    policy: str = "default"
    policy_options: dict[str, float | int | bool | str] = Field(default_factory=dict)
    # local executor: how many CPU slots this node offers (default: all cores)
    cpus: int | None = None
    # ray / slurm
    ray_address: str | None = None
    # Ray outages (aistack.executors.ray): a cluster unreachable this long fails its running
    # jobs (requeued where their spec allows); how often the link is checked; reconnect attempts
    ray_lost_after_s: float = Field(default=90.0, gt=0)
    ray_health_interval_s: float = Field(default=5.0, gt=0)
    ray_retry_interval_s: float = Field(default=5.0, gt=0)
    slurm_partition: str | None = None
    # refuse jobs of projects nobody created (`aistack projects set NAME`) other than
    # "default", as Slurm with AccountingStorageEnforce=associations refuses unknown accounts:
    # a typo ("reserach") otherwise runs at once in a new project without the quota of the
    # one meant
    require_projects: bool = False
    # mlflow embedded under /mlflow
    mlflow_enabled: bool = True
    # largest request body the server reads (bytes; larger ones get 413): the API's JSON bodies
    # (job specs, deploys, /plan inputs) and, under /mlflow, one artifact file per PUT, which
    # the embedded MLflow holds in memory while it stores it
    max_request_bytes: int = Field(default=16 * 2**20, gt=0)
    max_mlflow_request_bytes: int = Field(default=16 * 2**30, gt=0)
    debug: bool = False

    @field_validator("home")
    @classmethod
    def _home_is_a_dir(cls, v: Path) -> Path:
        # refused here, where the error names AISTACK_HOME, not as a FileExistsError from
        # whichever command first creates something in it
        p = v
        while not p.exists() and p != p.parent:
            p = p.parent
        if p.exists() and not p.is_dir():
            where = "it" if p == v else f"its parent {p}"
            raise ValueError(f"{v} is not a directory: {where} is a file")
        return v

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'aistack.db'}"

    @property
    def objects_url(self) -> str:
        return self.storage_url or str(self.home / "objects")

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def token_file(self) -> Path:
        return self.home / "token"

    @property
    def server_file(self) -> Path:
        return self.home / "server.json"

    def ensure_home(self) -> Path:
        """Create the home dir and ``jobs/`` owner-only (0700): they hold the API token, and job
        directories whose files may carry it. An existing dir keeps its mode here; the server
        tightens a group/world-accessible home at start (``aistack.server.app``)."""
        for d in (self.home, self.jobs_dir):
            if d.exists() and not d.is_dir():
                raise _home_error(self.home, f"{d} exists and is not a directory")
            try:
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:  # a parent is a file, no permission, read-only disk
                raise _home_error(self.home, f"cannot create {d}: {exc.strerror or exc}") from None
        return self.home


def _home_error(home: Path, problem: str) -> Exception:
    from aistack.errors import ValidationError

    return ValidationError(
        f"the aistack home dir {home} (AISTACK_HOME) is unusable: {problem}",
        hint="set AISTACK_HOME to a directory you can write (it is created if missing), "
        "or move what is in the way",
    )


def load_settings() -> Settings:
    """``Settings()`` from the environment; a bad AISTACK_* value is a ValidationError that
    names the variable instead of a pydantic traceback."""
    import pydantic
    from pydantic_settings import SettingsError

    from aistack.errors import ValidationError

    try:
        return Settings()
    except pydantic.ValidationError as exc:
        bad = "; ".join(
            f"AISTACK_{'_'.join(str(p) for p in e['loc'][:1]).upper()}: "
            + str(e["msg"]).removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise ValidationError(
            f"bad setting: {bad}", hint="fix or unset that environment variable"
        ) from None
    except SettingsError as exc:
        import re

        m = re.search(r'field "(\w+)"', str(exc))
        var = f"AISTACK_{m.group(1).upper()}" if m else "an AISTACK_* variable"
        raise ValidationError(
            f"bad setting: {var} could not be parsed (it takes JSON)",
            hint="fix or unset it, e.g. AISTACK_POLICY_OPTIONS='{\"max_wait_factor\": 20}'",
        ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()

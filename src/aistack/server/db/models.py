"""SQLAlchemy 2 models of the platform core. The DB is the source of truth for every job."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, index=True)  # submit order, monotonic
    name: Mapped[str] = mapped_column(String(128))
    project: Mapped[str] = mapped_column(String(64), index=True)
    user: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="batch")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    pending_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    estimated_start: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    retries_left: Mapped[int] = mapped_column(Integer, default=0)
    handle: Mapped[str | None] = mapped_column(String(512), nullable=True)
    executor: Mapped[str | None] = mapped_column(String(16), nullable=True)
    allocation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # the grace period (s) the first cancel asked for; None: the server's cancel_grace_s
    cancel_grace_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    # when the SIGKILL of the job's stop (cancel or preemption) is due (naive UTC), set when
    # it enters CANCELLING or PREEMPTING; a later, shorter cancel brings it forward
    kill_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    preempt_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    preempt_count: Mapped[int] = mapped_column(Integer, default=0)
    attained_service_s: Mapped[float] = mapped_column(Float, default=0.0)
    protected_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_jobs_state_seq", "state", "seq"),)


class JobEvent(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    t: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")


class AllocationRow(Base):
    """One allocation: a job attempt's devices on one node, with its measured use."""

    __tablename__ = "allocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    project: Mapped[str] = mapped_column(String(64), index=True)
    user: Mapped[str] = mapped_column(String(64))
    node: Mapped[str] = mapped_column(String(128))
    gpus: Mapped[list[int]] = mapped_column(JSON, default=list)
    gpu_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cpus: Mapped[list[int]] = mapped_column(JSON, default=list)
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    start: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    end: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    gpu_util_avg: Mapped[float | None] = mapped_column(Float, nullable=True)
    gpu_mem_max_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    cpu_util_avg: Mapped[float | None] = mapped_column(Float, nullable=True)
    rss_max_mb: Mapped[float | None] = mapped_column(Float, nullable=True)


class UsageSampleRow(Base):
    __tablename__ = "usage_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    allocation_id: Mapped[int] = mapped_column(
        ForeignKey("allocations.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    t: Mapped[dt.datetime] = mapped_column(DateTime)
    cpu_percent: Mapped[float] = mapped_column(Float, default=0.0)
    rss_mb: Mapped[float] = mapped_column(Float, default=0.0)
    gpu_util: Mapped[float | None] = mapped_column(Float, nullable=True)
    gpu_mem_mb: Mapped[float | None] = mapped_column(Float, nullable=True)


class NodeRow(Base):
    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    executor: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(128), default="127.0.0.1")
    cpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    gpus: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    schedulable: Mapped[bool] = mapped_column(Boolean, default=True)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Project(Base):
    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    gpu_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    monthly_budget_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    share: Mapped[float] = mapped_column(Float, default=1.0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Counter(Base):
    """Monotonic counters (job submit order) that work the same on SQLite and PostgreSQL."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class ServerLeaseRow(Base):
    """The one server that schedules against this DB (see ``server/services/lease.py``)."""

    __tablename__ = "server_lease"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1: one row
    owner: Mapped[str] = mapped_column(String(128))  # host:pid:random, unique per server run
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(512), default="")
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

"""Schemas of /datasets: versioned datasets, their files, diffs and lineage (read-only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSummary(_Out):
    name: str
    versions: int
    latest: str | None  # "name@v3"
    created_at: dt.datetime
    updated_at: dt.datetime | None


class DatasetVersionPublic(_Out):
    name: str
    version: int
    ref: str
    files: int
    bytes: int
    created_at: dt.datetime
    message: str | None
    tags: list[str]
    metadata: dict[str, Any]
    manifest: str
    hash_algo: str
    bytes_written: int | None = None
    unchanged: bool = False


class DatasetDetail(_Out):
    name: str
    versions: list[DatasetVersionPublic]
    tags: dict[str, int]


class DatasetFile(_Out):
    path: str
    size: int
    hash: str
    chunks: int


class ReferencePublic(_Out):
    kind: str
    id: str
    created_at: dt.datetime | None


class DatasetVersionDetail(DatasetVersionPublic):
    references: list[ReferencePublic]
    file_list: list[DatasetFile]
    file_list_truncated: bool


class FileChangePublic(_Out):
    path: str
    old_size: int | None
    new_size: int | None
    mode: str | None = None
    content: bool = True


class DatasetDiffPublic(_Out):
    a: str
    b: str
    added: list[FileChangePublic]
    removed: list[FileChangePublic]
    changed: list[FileChangePublic]
    unchanged: int
    bytes_added: int
    bytes_removed: int
    bytes_changed: int


class LineageNode(_Out):
    id: str
    kind: str
    name: str
    deleted_at: str | None = None  # ISO time: a deleted dataset version (its lineage stays)


class LineageEdge(_Out):
    src: str
    dst: str


class DatasetLineage(_Out):
    root: str
    nodes: list[LineageNode]
    edges: list[LineageEdge]

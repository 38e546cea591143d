"""Storage: a content-addressed object store on fsspec (local, S3, memory), versioned datasets
with Parquet manifests, references and lineage. Start with :class:`Datasets`."""

from aistack.storage.backends import Backend, open_backend
from aistack.storage.catalog import Catalog
from aistack.storage.datasets import (
    DatasetDiff,
    Datasets,
    DatasetSummary,
    DatasetVersion,
    FileChange,
    GcReport,
    GetResult,
    Progress,
)
from aistack.storage.manifest import FileEntry
from aistack.storage.objects import ObjectStore
from aistack.storage.refs import Ref, parse_ref
from aistack.storage.vfs import ReadOnlyError, VersionFileSystem

__all__ = [
    "Backend",
    "Catalog",
    "DatasetDiff",
    "DatasetSummary",
    "DatasetVersion",
    "Datasets",
    "FileChange",
    "FileEntry",
    "GcReport",
    "GetResult",
    "ObjectStore",
    "Progress",
    "ReadOnlyError",
    "Ref",
    "VersionFileSystem",
    "open_backend",
    "parse_ref",
]

"""Garbage collection of the object store: the objects and manifests no live dataset version
uses, and stale temp files (:meth:`Datasets.gc <aistack.storage.datasets.Datasets.gc>`)."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

from aistack.storage.catalog import Catalog
from aistack.storage.manifest import ManifestStore
from aistack.storage.objects import ObjectInfo, ObjectStore


@dataclass(frozen=True, kw_only=True)
class GcReport:
    dry_run: bool
    objects_total: int
    objects_live: int
    objects_deleted: int
    bytes_deleted: int
    objects_young: int
    manifests_deleted: int
    temp_deleted: int
    protected_versions: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def collect_garbage(
    catalog: Catalog,
    store: ObjectStore,
    manifests: ManifestStore,
    *,
    dry_run: bool,
    grace_s: float,
) -> GcReport:
    """:meth:`Datasets.gc <aistack.storage.datasets.Datasets.gc>` on ``store``, whose live
    versions ``catalog`` lists and whose manifests ``manifests`` holds."""
    live_m = catalog.live_manifests()
    protected = catalog.referenced_version_count()
    live: set[str] = set()
    for mid in live_m:
        for e in manifests.get(mid):  # raises on a damaged manifest: then delete nothing
            live.update(e.chunks)
    now = time.time()
    total = deleted = young = 0
    freed = 0
    for obj in store.iter_objects():
        total += 1
        if obj.oid in live:
            continue
        if obj.mtime is not None and now - obj.mtime < grace_s:
            young += 1
            continue
        # read again just before the delete: the listing may be old by now (S3 lists a whole
        # store at once), and an add that reuses the object meanwhile gave it a new mtime
        if not dry_run and _touched_since_listed(store, obj, now, grace_s):
            young += 1
            continue
        deleted += 1
        freed += obj.size
        if not dry_run:
            store.delete(obj.oid)
    # read again: a version added meanwhile may reuse a manifest that was not live above
    # (identical data added again after a delete); its add refreshed the manifest's mtime,
    # and every manifest that is not live gets the grace period, as objects do
    live_m = live_m | catalog.live_manifests()
    mdel = 0
    for mid in manifests.ids():
        if mid in live_m:
            continue
        if _young_manifest(store, manifests, mid, now, grace_s):
            continue
        mdel += 1
        if not dry_run:
            manifests.delete(mid)
    stale = store.stale_tmp(grace_s)
    if not dry_run:
        for p in stale:
            with contextlib.suppress(OSError):
                os.unlink(p)
    return GcReport(
        dry_run=dry_run,
        objects_total=total,
        objects_live=total - deleted - young,
        objects_deleted=deleted,
        bytes_deleted=freed,
        objects_young=young,
        manifests_deleted=mdel,
        temp_deleted=len(stale),
        protected_versions=protected,
    )


def _touched_since_listed(store: ObjectStore, obj: ObjectInfo, now: float, grace_s: float) -> bool:
    """Whether object ``obj`` got a new modification time since it was listed, or is young."""
    m = store.mtime_of(obj.oid)
    if m is None:  # gone already (another gc)
        return False
    return m != obj.mtime or now - m < grace_s


def _young_manifest(
    store: ObjectStore, manifests: ManifestStore, mid: str, now: float, grace_s: float
) -> bool:
    from aistack.storage.objects import _mtime

    try:
        info = store.backend.fs.info(manifests.key(mid))
    except FileNotFoundError:
        return False
    if store.backend.is_local:
        m: float | None = float(os.stat(manifests.key(mid)).st_mtime)
    else:
        m = _mtime(info)
    return m is None or now - m < grace_s

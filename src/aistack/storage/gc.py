"""Garbage collection of the object store: the objects and manifests no live dataset version
uses, and stale temp files (:meth:`Datasets.gc <aistack.storage.datasets.Datasets.gc>`).

An object is garbage when no live version's manifest (read once, first) names it and it is
older than the grace period; an add that reuses a stored object refreshes its modification time,
so an add running meanwhile keeps its objects. Each object is judged again as it is deleted
(:meth:`ObjectStore.delete_unless_touched
<aistack.storage.objects.ObjectStore.delete_unless_touched>`): on a local store atomically (no
add can lose an object it reuses); on S3 an add that reuses an object in the milliseconds
between that look and the delete loses it, and gc says so (a ConflictError naming the objects)
when that add's version is in the catalog by the end of gc's pass over the objects.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

from aistack.errors import ConflictError
from aistack.storage.catalog import Catalog
from aistack.storage.manifest import ManifestStore
from aistack.storage.objects import ObjectStore


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
    if not dry_run:  # objects a killed gc left half deleted: judged again below
        store.recover_trash(now - TRASH_STALE_S)
    total = deleted = young = 0
    freed = 0
    # (remote stores) what was deleted: checked against the versions added meanwhile
    gone: set[str] | None = None if store.backend.is_local or dry_run else set()
    for obj in store.iter_objects():
        total += 1
        if obj.oid in live:
            continue
        if obj.mtime is not None and now - obj.mtime < grace_s:
            young += 1
            continue
        if not dry_run:
            # judged again as it is deleted: the listing may be old by now (S3 lists a whole
            # store at once), and an add that reuses the object meanwhile gave it a new mtime
            def touched(m: float, listed: float | None = obj.mtime) -> bool:
                return m != listed or now - m < grace_s

            if not store.delete_unless_touched(obj.oid, touched):
                young += 1
                continue
            if gone is not None:
                gone.add(obj.oid)
        deleted += 1
        freed += obj.size
    # read again: a version added meanwhile may reuse a manifest that was not live above
    # (identical data added again after a delete); its add refreshed the manifest's mtime,
    # and every manifest that is not live gets the grace period, as objects do
    # (and an object of such a version that gc deleted on a remote store is reported)
    live_now = catalog.live_manifests()
    lost = _lost_to_adds(store, manifests, live_now - live_m, gone) if gone else {}
    live_m = live_m | live_now
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
    if lost:
        _raise_lost(store, lost)
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


TRASH_STALE_S = 60.0
"""An object left in ``cas/trash`` this long is a killed gc's (one being deleted stays there
for microseconds): the next gc puts it back and judges it again."""


def _lost_to_adds(
    store: ObjectStore, manifests: ManifestStore, new_live: set[str], gone: set[str]
) -> dict[str, list[str]]:
    """Of the objects gc deleted (``gone``), those a version added while gc ran uses (its
    manifest in ``new_live``) and that are missing now (an add that found one missing
    wrote it again), each with the dataset files that have it."""
    lost: dict[str, list[str]] = {}
    for mid in sorted(new_live):
        for e in manifests.get(mid):
            for oid in e.chunks:
                if oid in gone:
                    lost.setdefault(oid, []).append(e.path)
    return {oid: files for oid, files in lost.items() if not store.exists(oid)}


def _raise_lost(store: ObjectStore, lost: dict[str, list[str]]) -> None:
    oids = sorted(lost)
    shown = ", ".join(f"{o} (file {lost[o][0]})" for o in oids[:5])
    more = f" and {len(oids) - 5:,} more" if len(oids) > 5 else ""
    raise ConflictError(
        f"gc removed {len(oids):,} object(s) of {store.backend.url} while an add that ran "
        f"at the same time was reusing them: {shown}{more}; the version that add made is "
        "missing them (gc finished its other work)",
        hint="add the same data again (`aistack data add NAME SRC`): the missing objects are "
        "stored again and the version reads again (objects are named by their bytes); run gc "
        "when no add is running, or keep the default grace period",
        objects=oids[:100],
        files=[lost[o][0] for o in oids[:100]],
    )


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

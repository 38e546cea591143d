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

An add that has not committed its version yet is protected by its lease
(:func:`aistack.storage.holds.hold_add`): gc keeps every object, manifest and temp file
modified since the oldest running add started, whatever the grace period. Only adds that use
the same lease folder (``<AISTACK_HOME>/add-leases``: this machine, or a shared home) are seen;
against an add elsewhere only the grace period protects.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aistack.errors import ConflictError
from aistack.storage.catalog import Catalog
from aistack.storage.manifest import ManifestStore
from aistack.storage.objects import MissingObjectError, ObjectStore


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
    # live versions recorded in another store than this one, by store: their manifests are
    # not in this store, so nothing here is theirs (and nothing there was looked at)
    other_stores: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def collect_garbage(
    catalog: Catalog,
    store: ObjectStore,
    manifests: ManifestStore,
    *,
    dry_run: bool,
    grace_s: float,
    adds: tuple[float, float | None] | None = None,
    store_id: str | None = None,
) -> GcReport:
    """:meth:`Datasets.gc <aistack.storage.datasets.Datasets.gc>` on ``store``, whose live
    versions ``catalog`` lists and whose manifests ``manifests`` holds. ``adds``: ``(now,
    oldest)`` of :func:`aistack.storage.holds.gc_view_of_adds`, taken before the catalog is
    read (None: now, and no add running). ``store_id``: the identity versions record of
    ``store`` (:func:`aistack.storage.backends.store_identity`): a live version recorded in
    another store whose manifest is not in this one is left out (counted in ``other_stores``)
    instead of being reported as data this store lost."""
    from aistack.storage.holds import ADD_START_SLACK_S

    now, oldest = adds if adds is not None else (time.time(), None)

    def recent(m: float) -> bool:
        # (an add that starts after ``now`` writes or refreshes its objects after it; a store
        # with whole-second timestamps (S3) can date them up to 1 s earlier: not covered at
        # --grace 0, which is why a grace under 300 s needs --force)
        return now - m < grace_s or (oldest is not None and m >= oldest)

    live_m = catalog.live_manifests()
    protected = catalog.referenced_version_count()
    live: set[str] = set()
    other: dict[str, int] = {}
    for mid in sorted(live_m):
        try:
            entries = manifests.get(mid)  # raises on a damaged manifest: then delete nothing
        except MissingObjectError:
            sts = catalog.manifest_stores(mid)
            if not sts or store_id is None or any(st is None or st == store_id for st in sts):
                raise  # a version of this store (or of one not recorded): data was lost
            for st in sts:  # in another store: none of this store's objects is its
                assert st is not None
                other[st] = other.get(st, 0) + 1
            continue
        for e in entries:
            live.update(e.chunks)
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
        if obj.mtime is not None and recent(obj.mtime):
            young += 1
            continue
        if not dry_run:
            # judged again as it is deleted: the listing may be old by now (S3 lists a whole
            # store at once), and an add that reuses the object meanwhile gave it a new mtime
            def touched(m: float, listed: float | None = obj.mtime) -> bool:
                return m != listed or recent(m)

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
    lost = (
        _lost_to_adds(store, manifests, live_now - live_m, gone, catalog, store_id) if gone else {}
    )
    live_m = live_m | live_now
    mdel = 0
    for mid in manifests.ids():
        if mid in live_m:
            continue
        if _young_manifest(store, manifests, mid, recent):
            continue
        mdel += 1
        if not dry_run:
            manifests.delete(mid)
    # (the temp files of an add running now are kept, as its objects)
    keep_s = max(grace_s, ADD_START_SLACK_S, 0.0 if oldest is None else now - oldest)
    stale = store.stale_tmp(keep_s, now)
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
        other_stores=dict(sorted(other.items())),
    )


def view_adds(lease_dir: Path | None) -> tuple[float, float | None]:
    """``adds`` for :func:`collect_garbage`: gc's time (on this module's clock) and the start
    of the oldest add running (:func:`aistack.storage.holds.gc_view_of_adds`)."""
    from aistack.storage.holds import gc_view_of_adds

    return gc_view_of_adds(lease_dir, clock=lambda: time.time())


TRASH_STALE_S = 60.0
"""An object left in ``cas/trash`` this long is a killed gc's (one being deleted stays there
for microseconds): the next gc puts it back and judges it again."""


def _lost_to_adds(
    store: ObjectStore,
    manifests: ManifestStore,
    new_live: set[str],
    gone: set[str],
    catalog: Catalog,
    store_id: str | None,
) -> dict[str, list[str]]:
    """Of the objects gc deleted (``gone``), those a version added while gc ran uses (its
    manifest in ``new_live``) and that are missing now (an add that found one missing
    wrote it again), each with the dataset files that have it. A new version's manifest
    missing here raises (MissingObjectError) unless every live version with it is recorded
    in another store (added there meanwhile) or none is live any more (deleted meanwhile)."""
    lost: dict[str, list[str]] = {}
    for mid in sorted(new_live):
        try:
            entries = manifests.get(mid)
        except MissingObjectError:
            sts = catalog.manifest_stores(mid)
            if sts and (store_id is None or any(st is None or st == store_id for st in sts)):
                raise  # a version of this store (or of one not recorded): data was lost
            continue  # added to another store meanwhile, or deleted again
        for e in entries:
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
    store: ObjectStore, manifests: ManifestStore, mid: str, young: Callable[[float], bool]
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
    return m is None or young(m)

"""/datasets: versioned datasets, read-only (the CLI and SDK write through aistack.storage).

``{version}`` accepts ``3``, ``v3``, ``latest`` or a tag name.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Query

from aistack.errors import ValidationError
from aistack.server.context import ServerContext
from aistack.server.deps import get_ctx
from aistack.server.schemas.datasets import (
    DatasetDetail,
    DatasetDiffPublic,
    DatasetFile,
    DatasetLineage,
    DatasetSummary,
    DatasetVersionDetail,
    DatasetVersionPublic,
    ReferencePublic,
)

log = logging.getLogger(__name__)

router = APIRouter(tags=["datasets"])


def _ds(ctx: ServerContext) -> Any:
    ds = ctx.datasets()
    if ds is None:
        raise ctx.datasets_unavailable()
    return ds


def _ref(name: str, version: str, param: str = "version") -> str:
    """``NAME@VERSION``; a 422 that names the path or query parameter at fault (the storage
    layer's message names the joined reference: "invalid dataset reference 'corpus@-1'")."""
    from aistack.storage.refs import parse_ref

    _check_name(name)
    given, at, rest = version.partition("@")
    if at:
        # "corpus@v2" for dataset corpus is version v2 (it became "corpus@corpus@v2")
        if given != name:
            raise ValidationError(
                f"{param}: {version!r} names dataset {given!r}, not {name!r}",
                hint=f"give a version of {name}: v2, latest or a tag (or {name}@v2)",
                field=param,
            )
        version = rest
    try:
        parse_ref(f"{name}@{version}")
    except ValidationError as exc:
        raise _naming(param, exc) from None
    return f"{name}@{version}"


def _check_name(name: str) -> None:
    from aistack.storage.refs import check_name

    try:
        check_name(name)
    except ValidationError as exc:
        raise _naming("name", exc) from None


def _naming(param: str, exc: ValidationError) -> ValidationError:
    return ValidationError(f"{param}: {exc.message}", hint=exc.hint, field=param)


@router.get("/datasets", response_model=list[DatasetSummary])
def list_datasets(ctx: ServerContext = Depends(get_ctx)) -> list[DatasetSummary]:
    return [DatasetSummary(**s.to_dict()) for s in _ds(ctx).ls()]


@router.get("/datasets/{name}", response_model=DatasetDetail)
def get_dataset(name: str, ctx: ServerContext = Depends(get_ctx)) -> DatasetDetail:
    ds = _ds(ctx)
    _check_name(name)
    versions = ds.log(name)
    tags = {t: v.version for v in versions for t in v.tags}
    return DatasetDetail(
        name=name,
        versions=[DatasetVersionPublic(**v.to_dict()) for v in versions],
        tags=dict(sorted(tags.items())),
    )


@router.get("/datasets/{name}/versions/{version}", response_model=DatasetVersionDetail)
def get_version(
    name: str,
    version: str,
    limit: int = Query(1000, ge=1, le=100_000, description="files to list"),
    offset: int = Query(0, ge=0),
    ctx: ServerContext = Depends(get_ctx),
) -> DatasetVersionDetail:
    ds = _ds(ctx)
    v = ds.resolve(_ref(name, version))
    files = ds.files(v)
    page = files[offset : offset + limit]
    return DatasetVersionDetail(
        **v.to_dict(),
        references=[ReferencePublic(**r) for r in ds.references(v.ref)],
        file_list=[
            DatasetFile(path=e.path, size=e.size, hash=e.hash, chunks=len(e.chunks)) for e in page
        ],
        file_list_truncated=offset + limit < len(files),
    )


@router.get("/datasets/{name}/diff", response_model=DatasetDiffPublic)
def diff_versions(
    name: str,
    a: str = Query(..., description="old version: 1, v1, latest or a tag"),
    b: str = Query("latest", description="new version"),
    ctx: ServerContext = Depends(get_ctx),
) -> DatasetDiffPublic:
    d = _ds(ctx).diff(_ref(name, a, "a"), _ref(name, b, "b"))
    return DatasetDiffPublic(**d.to_dict())


@router.get("/datasets/{name}/versions/{version}/lineage", response_model=DatasetLineage)
def version_lineage(
    name: str, version: str, ctx: ServerContext = Depends(get_ctx)
) -> DatasetLineage:
    # a deleted version's lineage too (NAME@vN), its nodes marked with deleted_at
    g = _ds(ctx).lineage(_ref(name, version))
    if ctx.settings.mlflow_enabled:
        # the last hop, run → model version, is the registry's (it holds each version's run)
        from aistack.mlops.lineage import with_model_versions
        from aistack.mlops.server import backend_store_uri

        try:
            g = with_model_versions(g, tracking_uri=backend_store_uri(ctx.settings))
        except Exception as exc:  # noqa: BLE001 - the catalog's part still answers
            log.warning("lineage of %s@%s: model versions not read: %s", name, version, exc)
    return DatasetLineage(**g)

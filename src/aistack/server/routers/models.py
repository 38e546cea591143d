"""/models: registered models, their versions, promotion gates and lineage (MLflow registry).

The server reads MLflow's store directly (the same DB the embedded /mlflow serves), so these
calls need no HTTP round trip to itself.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from aistack.server.context import ServerContext
from aistack.server.deps import get_ctx
from aistack.server.schemas.models import (
    LineagePublic,
    ModelDetail,
    ModelSummary,
    PromoteRequest,
    PromotionPublic,
)

router = APIRouter(tags=["models"])


def _uri(ctx: ServerContext) -> str:
    from aistack.mlops.server import backend_store_uri

    return backend_store_uri(ctx.settings)


@router.get("/models", response_model=list[ModelSummary])
def list_models(ctx: ServerContext = Depends(get_ctx)) -> list[ModelSummary]:
    from aistack.mlops import registry

    return [ModelSummary(**m) for m in registry.list_models(tracking_uri=_uri(ctx))]


@router.get("/models/{name}", response_model=ModelDetail)
def get_model(name: str, ctx: ServerContext = Depends(get_ctx)) -> ModelDetail:
    from aistack.mlops import registry

    return ModelDetail(**registry.show_model(name, tracking_uri=_uri(ctx)))


@router.post("/models/{name}/promote", response_model=PromotionPublic)
def promote(
    name: str, body: PromoteRequest, ctx: ServerContext = Depends(get_ctx)
) -> PromotionPublic:
    """Move alias ``to`` to ``version`` if every condition holds (409 with the reason if not)."""
    from aistack.mlops import registry

    res = registry.promote(name, body.version, body.to, body.require, tracking_uri=_uri(ctx))
    return PromotionPublic(**res.to_dict())


@router.get("/models/{name}/versions/{version}/lineage", response_model=LineagePublic)
def lineage(
    name: str,
    version: int = Path(ge=1, le=2**63 - 1),
    ctx: ServerContext = Depends(get_ctx),
) -> LineagePublic:
    from aistack.mlops import registry

    return LineagePublic(**registry.lineage(name, version, tracking_uri=_uri(ctx)))

"""Planning and cost: catalog, training and inference sizing, TCO, cost of measured usage.

Pure functions over the catalog (no server, no DB): the CLI (``aistack plan``, ``aistack cost``),
the REST API (/api/v1/plan/...) and the SDK call the same code.
"""

from aistack.planning.catalog import Catalog, default_catalog, load_catalog
from aistack.planning.inference import ServePlan, plan_serving
from aistack.planning.tco import TcoResult, plan_tco
from aistack.planning.training import TrainPlan, plan_training
from aistack.planning.usage import AllocationRecord, PriceSheet, UsageReport, price_usage
from aistack.planning.whatif import HybridSweep, demand_profile, hybrid_sweep

__all__ = [
    "AllocationRecord",
    "Catalog",
    "HybridSweep",
    "PriceSheet",
    "ServePlan",
    "TcoResult",
    "TrainPlan",
    "UsageReport",
    "default_catalog",
    "demand_profile",
    "hybrid_sweep",
    "load_catalog",
    "plan_serving",
    "plan_tco",
    "plan_training",
    "price_usage",
]

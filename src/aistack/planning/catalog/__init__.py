"""The planning catalog: accelerators, cloud instances with prices, on-premises inputs.

The figures live in YAML files beside this module (``accelerators.yaml``, ``instances.yaml``,
``onprem.yaml``); each carries a ``source`` and an ``as_of`` date. A user overrides or extends
them with files of the same layout in ``AISTACK_HOME/catalog/*.yaml`` or with explicit paths
(``load_catalog(paths)``; the CLI's ``--catalog``): entries with the same name replace the
shipped ones, new names are added.

A file that cannot be read (not UTF-8 text, no permission) or does not hold a valid catalog is
an error that names the file and says how to fix it, in ``AISTACK_HOME/catalog/`` as among
the ``paths`` given: skipping it would price with the shipped figures instead of the user's without
anyone noticing. A folder whose name ends in ``.yaml`` there holds no figures: it is skipped
with a warning.
"""

from __future__ import annotations

from aistack.planning.catalog.catalog import STALE_AFTER_DAYS as STALE_AFTER_DAYS
from aistack.planning.catalog.catalog import Catalog
from aistack.planning.catalog.loading import default_catalog, load_catalog, user_catalog_dir
from aistack.planning.catalog.models import MAX_DEPRECIATION_YEARS as MAX_DEPRECIATION_YEARS
from aistack.planning.catalog.models import (
    PRICE_TIERS,
    Accelerator,
    CatalogFile,
    CpuPrice,
    Efficiency,
    Figure,
    FigureRow,
    Instance,
    OnPremInputs,
    Price,
    PriceTier,
    Server,
)
from aistack.planning.catalog.models import AsOf as AsOf
from aistack.planning.catalog.models import Count as Count
from aistack.planning.catalog.models import Number as Number
from aistack.planning.catalog.models import OnPremPatch as OnPremPatch
from aistack.planning.catalog.models import Text as Text
from aistack.planning.catalog.names import suggest

__all__ = [
    "PRICE_TIERS",
    "Accelerator",
    "Catalog",
    "CatalogFile",
    "CpuPrice",
    "Efficiency",
    "Figure",
    "FigureRow",
    "Instance",
    "OnPremInputs",
    "Price",
    "PriceTier",
    "Server",
    "default_catalog",
    "load_catalog",
    "suggest",
    "user_catalog_dir",
]

"""Keep MLflow's known noise out of job and server logs — that noise and nothing else.

What :func:`quiet_mlflow` silences, each matched by its exact text and category:

* the artifact progress bars (tqdm, "Downloading artifacts: 100%|████| ..."), which
  ``mlflow.pyfunc.log_model`` draws even when it copies local files and every download draws:
  ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false`` (MLflow's own switch, read at each transfer;
  set only when the user has not set it);
* ``UserWarning: Add type hints to the `predict` method ...``, raised when a ``PythonModel``
  subclass is defined; aistack's ``GPTPyfunc`` leaves its ``predict`` untyped on purpose (MLflow
  would read the hints as a wrong input schema);
* ``SADeprecationWarning: The ``noload`` loader strategy is deprecated ...``, raised by
  MLflow's SQL tracking store at start-up (MLflow's models use ``lazy="noload"``);
* ``StarletteDeprecationWarning: starlette.middleware.wsgi is deprecated ...``, raised when
  ``mlflow.server.fastapi_app`` imports Starlette's WSGI middleware (at every ``aistack up``,
  into server.log); matched by its category and MLflow's module as well, so code of one's own
  that imports that middleware is still warned.

Every other warning is left as it was. aistack calls this wherever it drives MLflow
(``mlops._client.mlflow_client``, the embedded server, ``train.export``); calling it again
changes nothing.

MLflow raises the type-hints warning under its own ``catch_warnings`` with a "once" filter in
front of every other, so no filter can silence it there: code that defines a ``PythonModel``
subclass does so inside :func:`without_mlflow_noise`, which holds back exactly that warning and
passes every other one on.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator

PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"

# MLflow colours some warnings: the text then starts with an ANSI escape ("\x1b[33m")
_ANSI = r"(?:\x1b\[[0-9;]*m)?"
TYPE_HINTS_MESSAGE = _ANSI + r"Add type hints to the `predict` method"
NOLOAD_MESSAGE = r"The ``noload`` loader strategy is deprecated"
STARLETTE_WSGI_MESSAGE = r"starlette\.middleware\.wsgi is deprecated"


def _noload_category() -> type[Warning]:
    try:
        from sqlalchemy.exc import SADeprecationWarning
    except ImportError:  # pragma: no cover - MLflow depends on SQLAlchemy
        return DeprecationWarning
    return SADeprecationWarning


def _starlette_category() -> type[Warning] | None:
    try:
        from starlette.exceptions import StarletteDeprecationWarning
    except ImportError:  # a Starlette without it does not raise the warning either
        return None
    return StarletteDeprecationWarning


def quiet_mlflow() -> None:
    """Turn off MLflow's artifact progress bars (unless the user set
    ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``) and ignore exactly the three warnings above."""
    os.environ.setdefault(PROGRESS_BAR_ENV, "false")
    _ignore(TYPE_HINTS_MESSAGE, UserWarning, r"mlflow\.")
    _ignore(NOLOAD_MESSAGE, _noload_category(), "")
    starlette = _starlette_category()
    if starlette is not None:
        # Starlette warns with stacklevel=2: the warning is MLflow's module's, which imports it
        _ignore(STARLETTE_WSGI_MESSAGE, starlette, r"mlflow\.")


def _ignore(message: str, category: type[Warning], module: str) -> None:
    """Add an "ignore" filter unless it is in place already: changing the filters resets
    Python's record of warnings already shown, and "default" ones would show again."""
    item = (
        "ignore",
        re.compile(message, re.I),
        category,
        re.compile(module) if module else None,
        0,
    )
    if item not in warnings.filters:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


_NOISE_TEXT = re.compile(TYPE_HINTS_MESSAGE + "|" + NOLOAD_MESSAGE, re.I)


def is_mlflow_noise(message: Warning | str) -> bool:
    """Whether a warning's text is one of the first two above (those
    :func:`without_mlflow_noise` holds back; the Starlette one is raised only where MLflow's
    server is imported, and its filter holds there)."""
    return _NOISE_TEXT.match(str(message)) is not None


@contextlib.contextmanager
def without_mlflow_noise() -> Iterator[None]:
    """Run the block with :func:`quiet_mlflow` in effect, holding back the first two warnings above
    even where MLflow overrides the filters; every other warning of the block is passed on
    (re-issued at its own file and line) when the block ends."""
    quiet_mlflow()
    with warnings.catch_warnings(record=True) as caught:
        yield
    for w in caught:
        if not is_mlflow_noise(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)

"""Model serving: deploy registered models as autoscaled HTTP endpoints.

Pieces (each usable alone):

* :mod:`aistack.serving.replica` — the model server (OpenAI ``/v1/completions`` and
  ``/v1/chat/completions`` (:mod:`aistack.serving.chat`), MLflow ``/invocations``, ``/health``,
  ``/metrics``) with dynamic batching (:mod:`aistack.serving.batching`).
* :mod:`aistack.serving.router` — least-outstanding-requests balancing, health checks, retries
  of idempotent requests, admission control (429 beyond a bounded queue), Prometheus metrics.
* :mod:`aistack.serving.autoscaler` — pure scaling policy with recorded reasons.
* :mod:`aistack.serving.controller` — one process per service: router + replica lifecycle +
  autoscaling + rolling updates.
* :mod:`aistack.serving.controller_app` — the controller's HTTP side: status, metrics and the
  admin calls (update, scale, shutdown) on the service port.
* :mod:`aistack.serving.manager` — deploy/list/status/update/delete/logs, used by the CLI
  (``aistack serve``) and the REST API (``/api/v1/services``).
* :mod:`aistack.serving.launcher` — where replicas run: local processes or aistack jobs.
"""

from __future__ import annotations

__all__: list[str] = []

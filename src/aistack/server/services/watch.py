"""Periodic checks the server runs beside scheduling: services whose controller process died
are restarted (the replicas that still run are adopted)."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class ServiceWatch:
    def __init__(self, *, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._next = 0.0

    def __call__(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.interval_s
        try:
            from aistack.serving import manager
        except ImportError:
            return
        try:
            services = manager.list_services()
        except Exception:  # noqa: BLE001
            return
        from aistack.errors import ConflictError, NotFoundError

        for svc in services:
            # (a service being deleted says "deleting", and restart refuses it: its delete
            # moves the folder away, and a controller started meanwhile ran on without it)
            if svc.get("status") == "controller down":
                log.warning("service %s: controller is down, restarting it", svc.get("name"))
                try:
                    manager.restart(svc["name"], wait_ready_s=None)
                except NotFoundError as exc:  # deleted since it was listed
                    log.info("service %s not restarted: %s", svc.get("name"), exc)
                except ConflictError as exc:
                    name = str(svc["name"])
                    gone = not (manager.service_dir(name) / "spec.json").exists()
                    if gone or manager._deleting(name):  # a delete began (or ended) meanwhile
                        log.info("service %s not restarted: %s", svc.get("name"), exc)
                    else:
                        log.exception("could not restart service %s", svc.get("name"))
                except Exception:  # noqa: BLE001
                    log.exception("could not restart service %s", svc.get("name"))

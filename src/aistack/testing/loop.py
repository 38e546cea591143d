"""A scheduler loop without the server around it, for tests and scripts: the loop the server
runs (``aistack.server.services.scheduling.SchedulerLoop``) on a settings' database, created
and migrated here, driven by hand with ``loop.run_once()``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aistack.server.services.scheduling import SchedulerLoop
    from aistack.settings import Settings


def scheduler_loop(settings: Settings, executor: Any, policy: Any = "default") -> SchedulerLoop:
    """The loop of ``settings`` (its home made, its database migrated) over ``executor``;
    ``policy``: a policy object or a name for :func:`aistack.scheduler.get_policy`."""
    from aistack.scheduler import get_policy
    from aistack.server.db.session import make_engine, migrate, session_factory
    from aistack.server.services.scheduling import SchedulerLoop

    settings.ensure_home()
    engine = make_engine(settings.db_url)
    migrate(engine)
    return SchedulerLoop(
        settings=settings,
        sessions=session_factory(engine),
        executor=executor,
        policy=get_policy(policy) if isinstance(policy, str) else policy,
    )


def close_loop(loop: SchedulerLoop) -> None:
    """Close the database connections of a loop from :func:`scheduler_loop`."""
    loop.sessions.kw["bind"].dispose()

"""Which running job holds which GPU, checked against the nodes' inventories, pass by pass.

``ClusterState`` comes from the caller in two halves that must agree: every node's GPUs
(all, and the free ones) and every running job's allocation. The pass reads capacity from
the first and, when it preempts, frees the victims' GPUs from the second. Where they
disagree the GPUs it counts are not there:

* a running job holds a GPU the node does not list (it fell off the bus; a stale row):
  preempting that job "frees" a GPU that does not exist, and the job placed there fails;
* two running jobs hold one GPU (or one job lists it twice): preempting either "frees" a
  GPU the other still holds;
* a GPU a running job holds is also listed free: the pass places a second job on it.

:class:`AllocationLedger` finds such nodes and the pass places nothing on them (they are
named, with the reason, in ``Decision.blocked_nodes``); the rest of the cluster is
scheduled as usual. The server's loop blocks such nodes itself before it calls the
policy; the ledger is what protects every other caller (the SDK, tests, notebooks).

The check is incremental: a running job's GPUs are entered when its ``RunningJob`` object is
first seen and removed when it stops running, and a node is looked at again only when its
``NodeState`` object changes or a job on it starts or stops. What is left per pass is a
look-up per running job and per node: in the simulator (about 57 jobs running on 25 nodes)
9–12 µs a pass, 7–19% of a pass (docs/scheduler.md). A caller that builds new objects every
pass (the server) pays O(running GPUs) a pass, as a full check would.
"""

from __future__ import annotations

from aistack.scheduler.placement import check_running, duplicate_error
from aistack.scheduler.types import ClusterState, NodeState, RunningJob


def _gpus(listed: list[int]) -> str:
    return ", ".join(str(g) for g in sorted(set(listed)))


class AllocationLedger:
    """Running jobs' GPUs per node, kept across passes; ``update`` returns the nodes whose
    running allocations contradict their inventory, node name → why."""

    __slots__ = ("jobs", "held", "nodes", "bad")

    def __init__(self) -> None:
        self.jobs: dict[str, RunningJob] = {}  # job id → the RunningJob object entered
        self.held: dict[str, dict[int, list[str]]] = {}  # node → GPU → ids of its holders
        self.nodes: dict[str, NodeState] = {}  # node → the NodeState object last looked at
        self.bad: dict[str, str] = {}  # node → why nothing may be placed there

    def update(self, cluster: ClusterState) -> dict[str, str]:
        """Enter the running jobs not seen before (each checked by ``check_running`` first:
        one whose numbers the pass cannot use raises ``ValidationError`` and nothing is
        entered), remove those gone, and look again at the nodes either touched or whose
        ``NodeState`` changed. A running job id listed twice is refused
        (``duplicate_error``). Returns node name → why nothing may be placed there."""
        running = cluster.running
        jobs = self.jobs
        dirty: set[str] = set()
        get = jobs.get
        added = [r for r in running if get(r.id) is not r]
        if added:
            check_running(added)
        if added or len(jobs) != len(running):
            live = {r.id for r in running}
            if len(live) != len(running):
                raise duplicate_error(cluster, "running")
            for jid in [j for j in jobs if j not in live]:
                self._remove(jid, dirty)
            for r in added:
                if r.id in jobs:  # the same job with a new object (a new allocation)
                    self._remove(r.id, dirty)
                self._add(r, dirty)
        seen = self.nodes
        for ns in cluster.nodes:
            if seen.get(ns.name) is not ns:
                seen[ns.name] = ns
                dirty.add(ns.name)
        if len(seen) > len(cluster.nodes):  # nodes gone from the cluster: forget them
            names = {ns.name for ns in cluster.nodes}
            for name in [n for n in seen if n not in names]:
                del seen[name]
                self.bad.pop(name, None)
        for name in dirty:
            state = seen.get(name)
            why = None if state is None else self._contradiction(state)
            if why is None:
                self.bad.pop(name, None)
            else:
                self.bad[name] = why
        return self.bad

    def _add(self, r: RunningJob, dirty: set[str]) -> None:
        self.jobs[r.id] = r
        held = self.held
        for name, a in r.allocation.nodes.items():
            if not a.gpus:
                continue
            on = held.get(name)
            if on is None:
                on = held[name] = {}
            for g in a.gpus:
                ids = on.get(g)
                if ids is None:
                    on[g] = [r.id]
                else:
                    ids.append(r.id)
            dirty.add(name)

    def _remove(self, jid: str, dirty: set[str]) -> None:
        r = self.jobs.pop(jid)
        held = self.held
        for name, a in r.allocation.nodes.items():
            on = held.get(name)
            if on is None or not a.gpus:
                continue
            for g in a.gpus:
                ids = on.get(g)
                if ids is None:
                    continue
                try:
                    ids.remove(jid)
                except ValueError:
                    pass
                if not ids:
                    del on[g]
            if not on:
                del held[name]
            dirty.add(name)

    def _contradiction(self, ns: NodeState) -> str | None:
        on = self.held.get(ns.name)
        if not on:
            return None
        twice = [g for g, ids in on.items() if len(ids) > 1]
        if twice:
            ids = sorted(set(on[min(twice)]))
            who = (
                f"running jobs {', '.join(ids)} all hold"
                if len(ids) > 1
                else f"running job {ids[0]} lists twice"
            )
            return f"{who} GPU(s) {_gpus(twice)}: which job holds it is unknown"
        total = ns.gpus_total
        lacks = [g for g in on if g not in total]
        if lacks:
            return (
                f"running jobs hold GPU(s) {_gpus(lacks)}, which its inventory lacks "
                f"(it lists {_gpus(list(total)) or 'no GPUs'})"
            )
        free = ns.gpus_free
        listed = [g for g in on if g in free]
        if listed:
            return (
                f"GPU(s) {_gpus(listed)} are listed free but running job(s) "
                f"{', '.join(sorted({i for g in listed for i in on[g]}))} hold them"
            )
        return None

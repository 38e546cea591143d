"""Request metrics for routers and replicas, in Prometheus text format and as a summary.

Latency quantiles are computed over a sliding window (default 60 s) so ``serve status``
shows current p50/p99 and QPS rather than all-time figures.

Latency is that of the requests that were answered: error answers (4xx, 5xx) are left out of
the quantiles and of the latency summary's ``_sum``/``_count`` (a burst of fast 400s or 429s
would otherwise pull p50 down and make an overloaded service look fast) and are counted apart:
``requests_total`` by code, ``errors_window`` (5xx) and ``client_errors_window`` (4xx) in the
summary. QPS counts every answer, divided by the time the window actually covers: its length,
or less while the metrics are younger than that (a restarted router or replica has not been up
for a whole window; at least 1 s is counted, so a first request is not a spike).
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field
from typing import Any


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (q in [0, 1]) of an unsorted list; 0.0 when empty."""
    if not values:
        return 0.0
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))
    return s[k]


@dataclass(kw_only=True)
class RequestMetrics:
    prefix: str = "aistack_serve"
    labels: dict[str, str] = field(default_factory=dict)
    window_s: float = 60.0
    clock: Any = time.monotonic
    requests_total: collections.Counter[str] = field(default_factory=collections.Counter)
    retries_total: int = 0
    latency_sum_s: float = 0.0  # of answered (status < 400) requests only
    latency_count: int = 0
    # (time, latency, status) of each answer in the window
    _recent: collections.deque[tuple[float, float, int]] = field(
        default_factory=lambda: collections.deque(maxlen=100_000)
    )
    started: float | None = None  # clock() when counting began (None: at construction)

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = self.clock()

    def observe(self, status: int, latency_s: float) -> None:
        now = self.clock()
        self.requests_total[str(status)] += 1
        if status < 400:
            self.latency_sum_s += latency_s
            self.latency_count += 1
        self._recent.append((now, latency_s, status))

    def _window(self) -> list[tuple[float, float, int]]:
        cutoff = self.clock() - self.window_s
        while self._recent and self._recent[0][0] < cutoff:
            self._recent.popleft()
        return list(self._recent)

    def summary(self, *, window_s: float | None = None) -> dict[str, Any]:
        rows = self._window()
        if window_s is not None:
            cutoff = self.clock() - window_s
            rows = [r for r in rows if r[0] >= cutoff]
        span = window_s or self.window_s
        # the part of the window these metrics existed for (not yet all of it after a restart)
        up = self.clock() - (self.started if self.started is not None else 0.0)
        covered = min(span, max(1.0, up))
        lat = [r[1] for r in rows if r[2] < 400]
        errors_total = sum(v for k, v in self.requests_total.items() if k.startswith("5"))
        return {
            "qps": len(rows) / covered if covered else 0.0,
            # None, not 0 ms, while no request was answered in the window (idle, or only
            # errors): an idle or failing service must not read as an instant one
            "p50_ms": quantile(lat, 0.50) * 1000.0 if lat else None,
            "p99_ms": quantile(lat, 0.99) * 1000.0 if lat else None,
            "errors_window": sum(1 for r in rows if r[2] >= 500),
            "client_errors_window": sum(1 for r in rows if 400 <= r[2] < 500),
            "requests_total": sum(self.requests_total.values()),
            "errors_total": errors_total,
            "client_errors_total": sum(
                v for k, v in self.requests_total.items() if k.startswith("4")
            ),
            "retries_total": self.retries_total,
        }

    def mean_latency_s(self, window_s: float) -> float | None:
        """Mean latency of the requests answered (status < 400) in the last ``window_s``
        seconds; None when there were none."""
        cutoff = self.clock() - window_s
        lat = [r[1] for r in self._recent if r[0] >= cutoff and r[2] < 400]
        return sum(lat) / len(lat) if lat else None

    def prometheus(self, gauges: dict[str, float] | None = None, extra: str = "") -> str:
        """Render counters, a latency summary and the given gauges as Prometheus text."""
        p = self.prefix
        lbl = ",".join(f'{k}="{_esc(v)}"' for k, v in sorted(self.labels.items()))
        sep = "," if lbl else ""
        lines = [
            f"# HELP {p}_requests_total Requests answered, by HTTP status code.",
            f"# TYPE {p}_requests_total counter",
        ]
        for code, n in sorted(self.requests_total.items()):
            lines.append(f'{p}_requests_total{{{lbl}{sep}code="{code}"}} {n}')
        lines += [
            f"# HELP {p}_retries_total Requests retried on another replica.",
            f"# TYPE {p}_retries_total counter",
            f"{p}_retries_total{{{lbl}}} {self.retries_total}",
            f"# HELP {p}_request_duration_seconds Latency of answered requests (status below 400; "
            f"errors are in {p}_requests_total by code), quantiles over the last {self.window_s:g} s.",
            f"# TYPE {p}_request_duration_seconds summary",
        ]
        lat = [r[1] for r in self._window() if r[2] < 400]
        for q in (0.5, 0.9, 0.99):
            lines.append(
                f'{p}_request_duration_seconds{{{lbl}{sep}quantile="{q}"}} {quantile(lat, q):.6f}'
            )
        lines.append(f"{p}_request_duration_seconds_sum{{{lbl}}} {self.latency_sum_s:.6f}")
        lines.append(f"{p}_request_duration_seconds_count{{{lbl}}} {self.latency_count}")
        for name, value in sorted((gauges or {}).items()):
            lines.append(f"# TYPE {p}_{name} gauge")
            lines.append(f"{p}_{name}{{{lbl}}} {value}")
        text = "\n".join(lines) + "\n"
        return text + extra


def batch_size_prometheus(prefix: str, labels: dict[str, str], counts: dict[str, int]) -> str:
    """Batch sizes as a Prometheus histogram (cumulative buckets)."""
    lbl = ",".join(f'{k}="{_esc(v)}"' for k, v in sorted(labels.items()))
    sep = "," if lbl else ""
    sizes = sorted((int(k), v) for k, v in counts.items())
    lines = [
        f"# HELP {prefix}_batch_size Requests per model call (dynamic batching).",
        f"# TYPE {prefix}_batch_size histogram",
    ]
    total = 0
    total_items = 0
    for le in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024):
        cum = sum(v for s, v in sizes if s <= le)
        lines.append(f'{prefix}_batch_size_bucket{{{lbl}{sep}le="{le}"}} {cum}')
    for s, v in sizes:
        total += v
        total_items += s * v
    lines.append(f'{prefix}_batch_size_bucket{{{lbl}{sep}le="+Inf"}} {total}')
    lines.append(f"{prefix}_batch_size_sum{{{lbl}}} {total_items}")
    lines.append(f"{prefix}_batch_size_count{{{lbl}}} {total}")
    return "\n".join(lines) + "\n"


def _esc(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

"""Queueing theory references for validating the simulator (M/M/c, Erlang C)."""

from __future__ import annotations


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (offered load a = λ/μ < c)."""
    c, a = servers, offered
    if c < 1 or not 0 <= a < c:
        raise ValueError("need servers >= 1 and 0 <= offered load < servers")
    # numerically stable: Erlang B by recursion, then C from B
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1 - rho + rho * b)


def mmc_mean_wait(servers: int, load: float, mean_service_s: float) -> float:
    """Mean waiting time in queue (Wq) of M/M/c at utilization `load` (ρ)."""
    a = load * servers
    mu = 1.0 / mean_service_s
    lam = a * mu
    return erlang_c(servers, a) / (servers * mu - lam)


def erlang_c_check(servers: int, load: float) -> float:
    """P(wait) for quick sanity checks (same as erlang_c with a = ρc)."""
    return erlang_c(servers, load * servers)


__all__ = ["erlang_c", "erlang_c_check", "mmc_mean_wait"]

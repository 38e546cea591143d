from __future__ import annotations

import json
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aistack.errors import ValidationError
from aistack.launch import build_mxnet_ps_envs, build_rank_envs, free_port


def test_torch_env_matches_torchrun_layout() -> None:
    ranks = build_rank_envs("torch", ["n0", "n1"], 2, 29500, "job-7")
    assert [(r.host, r.rank, r.local_rank) for r in ranks] == [
        ("n0", 0, 0),
        ("n0", 1, 1),
        ("n1", 2, 0),
        ("n1", 3, 1),
    ]
    env = ranks[3].env
    assert env["MASTER_ADDR"] == "n0"
    assert env["MASTER_PORT"] == "29500"
    assert env["RANK"] == "3" and env["LOCAL_RANK"] == "1"
    assert env["WORLD_SIZE"] == "4" and env["LOCAL_WORLD_SIZE"] == "2"
    assert env["GROUP_RANK"] == "1" and env["NODE_RANK"] == "1"
    assert env["ROLE_RANK"] == "3" and env["ROLE_WORLD_SIZE"] == "4"
    assert env["GROUP_WORLD_SIZE"] == "2"
    assert env["TORCHELASTIC_RUN_ID"] == "job-7"
    assert env["TORCHELASTIC_USE_AGENT_STORE"] == "False"
    assert int(env["OMP_NUM_THREADS"]) >= 1
    assert "CUDA_VISIBLE_DEVICES" not in env


def test_torch_gpus_keep_local_rank_indexing() -> None:
    ranks = build_rank_envs("pytorch", ["h"], 2, 1234, "j", gpus_per_host=[[2, 5]])
    assert [r.env["CUDA_VISIBLE_DEVICES"] for r in ranks] == ["2,5", "2,5"]
    assert [r.env["AISTACK_GPU"] for r in ranks] == ["2", "5"]
    iso = build_rank_envs("torch", ["h"], 2, 1234, "j", gpus_per_host=[[2, 5]], isolate_gpus=True)
    assert [r.env["CUDA_VISIBLE_DEVICES"] for r in iso] == ["2", "5"]


def test_base_env_kept_and_rank_vars_win() -> None:
    ranks = build_rank_envs(
        "torch", ["h"], 1, 1234, "j", base_env={"FOO": "1", "RANK": "99", "OMP_NUM_THREADS": "3"}
    )
    assert ranks[0].env["FOO"] == "1"
    assert ranks[0].env["RANK"] == "0"
    assert ranks[0].env["OMP_NUM_THREADS"] == "3"


def test_jax_env() -> None:
    ranks = build_rank_envs("jax", ["a", "b"], 1, 4000, "j", gpus_per_host=[[0], [3]])
    assert ranks[1].env["JAX_COORDINATOR_ADDRESS"] == "a:4000"
    assert ranks[1].env["JAX_NUM_PROCESSES"] == "2"
    assert ranks[1].env["JAX_PROCESS_ID"] == "1"
    assert ranks[1].env["CUDA_VISIBLE_DEVICES"] == "3"  # one GPU per process


def test_tensorflow_tf_config() -> None:
    ranks = build_rank_envs("tf", ["a", "b"], 2, 5000, "j")
    cfg = json.loads(ranks[2].env["TF_CONFIG"])
    assert cfg["cluster"]["worker"] == ["a:5000", "a:5001", "b:5000", "b:5001"]
    assert cfg["task"] == {"type": "worker", "index": 2}


def test_mxnet_env_and_ps_processes() -> None:
    ranks = build_rank_envs("mxnet", ["a", "b"], 2, 9000, "j")
    env = ranks[3].env
    assert env["DMLC_ROLE"] == "worker"
    assert env["DMLC_PS_ROOT_URI"] == "a" and env["DMLC_PS_ROOT_PORT"] == "9000"
    assert env["DMLC_NUM_WORKER"] == "4" and env["DMLC_NUM_SERVER"] == "2"
    ps = build_mxnet_ps_envs(["a", "b"], 2, 9000)
    assert [(h, role) for h, role, _ in ps] == [
        ("a", "scheduler"),
        ("a", "server"),
        ("b", "server"),
    ]
    assert all(e["DMLC_NUM_WORKER"] == "4" for _, _, e in ps)


def test_unknown_framework_names_field_and_allowed_values() -> None:
    with pytest.raises(ValidationError) as ei:
        build_rank_envs("horovod", ["h"], 1, 1234, "j")
    err = ei.value
    assert "distributed" in str(err)
    assert err.details["field"] == "distributed"
    assert err.details["allowed"] == ["torch", "jax", "tensorflow", "mxnet"]
    assert "torch, jax, tensorflow, mxnet" in str(err)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"hosts": []}, "hosts"),
        ({"hosts": ["a", "a"]}, "hosts"),
        ({"procs_per_host": 0}, "procs_per_host"),
        ({"master_port": 70000}, "master_port"),
        ({"gpus_per_host": [[0]]}, "gpus_per_host"),
        ({"gpus_per_host": [[0, 1], [0]]}, "gpus_per_host"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict, field: str) -> None:
    args = {"hosts": ["a", "b"], "procs_per_host": 2, "master_port": 1234} | kwargs
    with pytest.raises(ValidationError, match=field):
        build_rank_envs(
            "torch",
            args["hosts"],
            args["procs_per_host"],
            args["master_port"],
            "j",
            gpus_per_host=args.get("gpus_per_host"),
        )


@settings(max_examples=50, deadline=None)
@given(
    nhosts=st.integers(1, 5),
    procs=st.integers(1, 8),
    fw=st.sampled_from(["torch", "jax", "tensorflow", "mxnet"]),
)
def test_every_rank_once_and_hosts_contiguous(nhosts: int, procs: int, fw: str) -> None:
    hosts = [f"h{i}" for i in range(nhosts)]
    ranks = build_rank_envs(fw, hosts, procs, 1000, "j")
    assert [r.rank for r in ranks] == list(range(nhosts * procs))
    for r in ranks:
        assert r.host == hosts[r.rank // procs]
        assert r.local_rank == r.rank % procs
        assert r.env["AISTACK_RANK"] == str(r.rank)
        assert r.env["AISTACK_WORLD_SIZE"] == str(nhosts * procs)


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_default_threads_are_the_pinned_cores_share(monkeypatch: pytest.MonkeyPatch) -> None:
    # a job pinned to 2 of 64 cores: 2 ranks get 1 thread each, not 32 (oversubscription)
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {4, 5}, raising=False)
    ranks = build_rank_envs("torch", ["h"], 2, 1234, "j")
    assert [r.env["OMP_NUM_THREADS"] for r in ranks] == ["1", "1"]
    one = build_rank_envs("jax", ["h"], 1, 1234, "j")
    assert one[0].env["OMP_NUM_THREADS"] == "2"


# ---- bad input: a ValidationError naming the argument, never a traceback or a wrong env ----


def test_hosts_given_as_one_string_is_refused() -> None:
    # a str is a sequence: "node" became the four hosts n, o, d, e
    with pytest.raises(ValidationError, match=r"^hosts: must be a list of host names") as ei:
        build_rank_envs("torch", "node", 1, 1234, "j")  # type: ignore[arg-type]
    assert ei.value.hint == "e.g. hosts=['node']"
    with pytest.raises(ValidationError, match=r"^hosts: must be a list"):
        build_mxnet_ps_envs("ab", 1, 1234)  # type: ignore[arg-type]


def test_tensorflow_worker_ports_past_65535_are_refused() -> None:
    # each tensorflow worker listens on master_port + local rank: 65535 + 1 is no port
    with pytest.raises(ValidationError, match=r"65535\.\.65536 here") as ei:
        build_rank_envs("tensorflow", ["h"], 2, 65535, "j")
    assert ei.value.details == {"field": "master_port"}
    assert "at most 65534" in (ei.value.hint or "")
    ranks = build_rank_envs("tensorflow", ["h"], 2, 65534, "j")
    assert json.loads(ranks[1].env["TF_CONFIG"])["cluster"]["worker"] == ["h:65534", "h:65535"]
    # torch uses the one port only
    assert build_rank_envs("torch", ["h"], 2, 65535, "j")[1].env["MASTER_PORT"] == "65535"


def test_a_tf_config_longer_than_an_environment_string_is_refused() -> None:
    # Linux starts no process with one environment string over 128 KiB (E2BIG)
    hosts = [f"{'n' * 200}{i}" for i in range(700)]
    with pytest.raises(ValidationError, match=r"^procs_per_host: TF_CONFIG for 700 tensorflow"):
        build_rank_envs("tensorflow", hosts, 1, 5000, "j")
    assert len(build_rank_envs("torch", hosts, 1, 5000, "j")) == 700


def test_a_gang_of_more_than_max_world_size_ranks_is_refused_at_once() -> None:
    # procs_per_host=10**7 built ten million environments (minutes, GBs): looked like a hang
    with pytest.raises(ValidationError, match=r"^procs_per_host: 2 host\(s\) × 131073"):
        build_rank_envs("torch", ["a", "b"], (1 << 17) + 1, 1234, "j")
    with pytest.raises(ValidationError, match=r"10,000,000 ranks, more than the 262,144"):
        build_rank_envs("torch", ["h"], 10**7, 1234, "j")
    from aistack.launch.env import MAX_WORLD_SIZE

    assert MAX_WORLD_SIZE == 1 << 18


@pytest.mark.parametrize(
    "gpus",
    [[0], "ab", [[-1]], [[None]], [["x"]], [[True]], [[0.0]], [{0: 1}]],
    ids=["int-entry", "str", "negative", "None", "text", "bool", "float", "dict"],
)
def test_gpus_that_are_not_lists_of_indices_are_refused(gpus: object) -> None:
    # [0] was a TypeError from len(); -1, None and 'x' became CUDA_VISIBLE_DEVICES
    with pytest.raises(ValidationError, match=r"^gpus_per_host: ") as ei:
        build_rank_envs("torch", ["h"], 1, 1234, "j", gpus_per_host=gpus)  # type: ignore[arg-type]
    assert ei.value.details == {"field": "gpus_per_host"}
    assert "gpus_per_host=[[0, 1]]" in (ei.value.hint or "")


@pytest.mark.parametrize(
    ("base_env", "says"),
    [
        ({"A": None}, "base_env: A must be a string, got None"),
        ({"A": True}, "base_env: A must be a string, got True"),
        ({"A": ["x"]}, "base_env: A must be a string, got ['x']"),
        ({"A=B": "x"}, "base_env: 'A=B' is not an environment variable name"),
        ({"": "x"}, "base_env: '' is not an environment variable name"),
        ({1: "x"}, "base_env: 1 is not an environment variable name"),
        ({"A": "x\0y"}, "base_env: the value of A contains a NUL character"),
        ([("A", "x")], "base_env: must be a mapping of variable names to values, got list"),
    ],
)
def test_base_env_that_no_environment_can_hold_is_refused(base_env: object, says: str) -> None:
    # None was set as the text "None"; the others failed only when a rank was started
    for build in (
        lambda: build_rank_envs("torch", ["h"], 1, 1234, "j", base_env=base_env),  # type: ignore[arg-type]
        lambda: build_mxnet_ps_envs(["h"], 1, 1234, base_env),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValidationError) as ei:
            build()
        assert ei.value.message.startswith(says)
        assert ei.value.details == {"field": "base_env"}


def test_base_env_numbers_are_still_written_as_text() -> None:
    ranks = build_rank_envs("torch", ["h"], 1, 1234, "j", base_env={"SEED": 7, "LR": 0.5})
    assert ranks[0].env["SEED"] == "7" and ranks[0].env["LR"] == "0.5"


@pytest.mark.parametrize("threads", [-1, 2.5, "4", True])
def test_threads_per_proc_that_is_not_a_count_is_refused(threads: object) -> None:
    # it became OMP_NUM_THREADS=-1 / 2.5 / True
    with pytest.raises(ValidationError, match=r"^threads_per_proc: must be an integer ≥ 1"):
        build_rank_envs("torch", ["h"], 1, 1234, "j", threads_per_proc=threads)  # type: ignore[arg-type]


def test_threads_per_proc_zero_or_none_is_the_share_of_the_usable_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    for threads in (0, None):
        ranks = build_rank_envs("torch", ["h"], 2, 1234, "j", threads_per_proc=threads)
        assert [r.env["OMP_NUM_THREADS"] for r in ranks] == ["2", "2"]


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("no-such-host.invalid", r"^host: cannot resolve 'no-such-host\.invalid' \("),
        ("192.0.2.1", r"^host: cannot listen on '192\.0\.2\.1' .*not an address of this machine"),
        (None, r"^host: must be a host name or address, got None"),
        (5, r"^host: must be a host name or address, got 5"),
    ],
)
def test_free_port_on_a_host_that_is_not_this_machine_is_refused(host: object, says: str) -> None:
    # socket.gaierror / OSError / TypeError tracebacks before
    with pytest.raises(ValidationError, match=says) as ei:
        free_port(host)  # type: ignore[arg-type]
    assert ei.value.details == {"field": "host"}
    assert "127.0.0.1" in (ei.value.hint or "")


def test_free_port_on_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port = free_port("::1")  # (was 'Address family for hostname not supported')
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", port))
    assert 1 <= free_port("localhost") <= 65535

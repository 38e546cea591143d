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

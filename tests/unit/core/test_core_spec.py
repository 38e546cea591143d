from __future__ import annotations

from typing import Any

import pytest

from aistack.compute.resources import GpuDevice, Node, parse_memory_mb
from aistack.errors import ValidationError
from aistack.spec import check_feasible, load_spec_file, parse_duration_s, parse_spec


def test_memory_units() -> None:
    assert parse_memory_mb("16GB") == 16 * 1024
    assert parse_memory_mb("512Mi") == 512
    assert parse_memory_mb("1.5g") == 1536
    assert parse_memory_mb(2048) == 2048
    assert parse_memory_mb(None) is None
    with pytest.raises(ValidationError, match="cannot read '12XB' as a size"):
        parse_memory_mb("12XB")
    with pytest.raises(ValidationError, match="positive"):
        parse_memory_mb(0)


def test_durations() -> None:
    assert parse_duration_s("90s") == 90
    assert parse_duration_s("30m") == 1800
    assert parse_duration_s("2h") == 7200
    assert parse_duration_s(5) == 5
    with pytest.raises(ValidationError, match="duration"):
        parse_duration_s("soon")


def test_unknown_key_names_the_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "job.yaml"
    f.write_text("name: t\ncommand: echo hi\nresources:\n  gpu: 2\n")
    with pytest.raises(ValidationError) as ei:
        load_spec_file(f)
    assert "unknown key 'resources.gpu'" in str(ei.value)
    assert str(f) in str(ei.value)


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ({"gpus": 1}, "unknown key 'gpus': it belongs under resources (resources: {gpus: ...})"),
        ({"memory": "8GB"}, "unknown key 'memory': it belongs under resources"),
        ({"gpu": 1}, "unknown key 'gpu': did you mean 'resources.gpus'?"),
        ({"comand": "y"}, "unknown key 'comand': did you mean 'command'?"),
        ({"resources": {"gpu": 1}}, "unknown key 'resources.gpu': did you mean 'resources.gpus'?"),
        ({"resources": {"priority": 1}}, "'resources.priority': priority is a top-level key"),
        ({"bogus": 1}, "unknown key 'bogus': remove it or check its spelling"),
    ],
)
def test_unknown_keys_say_where_they_belong(spec: dict, said: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError) as ei:
        parse_spec({"command": "x", **spec})
    assert said in str(ei.value)


def test_env_as_a_list_says_to_write_a_mapping() -> None:
    with pytest.raises(ValidationError) as ei:
        parse_spec({"command": "x", "env": ["A=1"]})
    assert "env: expected a mapping of NAME: value such as {A: '1'}, got ['A=1']" in str(ei.value)


def test_env_numbers_are_their_text_as_in_docker_compose(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "job.yaml"
    f.write_text("command: echo hi\nenv: {A: 1, B: 0.5, C: -3, D: '07', E: text}\n")
    assert load_spec_file(f).env == {"A": "1", "B": "0.5", "C": "-3", "D": "07", "E": "text"}


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("true", 'env.A: true is a YAML boolean; quote it ("true") if you mean the string'),
        ("no", 'env.A: false is a YAML boolean; quote it ("false") if you mean the string'),
        ("~", "env.A: must be a string, got null"),
        ("", "env.A: must be a string, got null"),
        ("[1, 2]", "env.A: must be a string, got a list"),
        ("{x: 1}", "env.A: must be a string, got a mapping"),
    ],
)
def test_env_booleans_nulls_lists_and_mappings_are_refused_naming_the_key(
    tmp_path, value: str, said: str
) -> None:  # type: ignore[no-untyped-def]
    """pydantic said "env.A: Input should be a valid string" (and nothing for a number, which
    it refused too); a boolean's text ("True") is seldom what was meant, so it is refused."""
    f = tmp_path / "job.yaml"
    f.write_text(f"command: echo hi\nenv:\n  B: 1\n  A: {value}\n")
    with pytest.raises(ValidationError) as ei:
        load_spec_file(f)
    assert ei.value.message == f"invalid job spec ({f}): {said}"
    assert "quote them in YAML (A: '1', DEBUG: 'true', EMPTY: ''" in (ei.value.hint or "")


def test_load_spec_file_refuses_a_directory_and_non_utf8_clearly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="is a directory"):
        load_spec_file(tmp_path)
    f = tmp_path / "job.yaml"
    f.write_bytes(b"command: echo \xff\n")
    with pytest.raises(ValidationError, match="not UTF-8 text"):
        load_spec_file(f)
    f.write_text("- a list\n")
    with pytest.raises(ValidationError, match="a job spec is a YAML mapping"):
        load_spec_file(f)


def test_several_problems_reported_at_once() -> None:
    with pytest.raises(ValidationError) as ei:
        parse_spec(
            {"command": "x", "resources": {"cpus": 0, "memory": "lots"}, "max_runtime": "abc"}
        )
    msg = str(ei.value)
    assert "resources.cpus" in msg and "resources.memory" in msg and "max_runtime" in msg


def test_command_or_script_required() -> None:
    with pytest.raises(ValidationError, match="exactly one of `command` or `script`"):
        parse_spec({"name": "x"})
    spec = parse_spec({"script": "echo a\necho b", "resources": {"memory": "1GB", "gpus": 1}})
    assert spec.shell_command == "echo a\necho b"
    assert spec.resources.memory_mb == 1024


def test_bad_names_and_env() -> None:
    with pytest.raises(ValidationError, match="not a valid name"):
        parse_spec({"command": "x", "name": "has space"})
    with pytest.raises(ValidationError, match="not a valid environment variable"):
        parse_spec({"command": "x", "env": {"1BAD": "v"}})
    with pytest.raises(ValidationError, match="distributed"):
        parse_spec({"command": "x", "distributed": "horovod"})


def _h100_node(name: str, uuid_prefix: str) -> Node:
    gpus = tuple(
        GpuDevice(index=i, uuid=f"{uuid_prefix}{i}", name="NVIDIA H100", memory_mb=81920)
        for i in range(4)
    )
    return Node(name=name, cpus=8, memory_mb=32768, gpus=gpus)


NODES = [_h100_node("a", "u"), _h100_node("b", "v")]


def test_feasibility_messages() -> None:
    check_feasible(parse_spec({"command": "x", "resources": {"gpus": 4, "nodes": 2}}), NODES)
    with pytest.raises(
        ValidationError, match="asks for 8 GPUs per node but the largest node has 4"
    ):
        check_feasible(parse_spec({"command": "x", "resources": {"gpus": 8}}), NODES)
    with pytest.raises(ValidationError, match="no node has a 'A100' GPU"):
        check_feasible(
            parse_spec({"command": "x", "resources": {"gpus": 1, "gpu_type": "A100"}}), NODES
        )
    with pytest.raises(ValidationError, match="resources.memory"):
        check_feasible(parse_spec({"command": "x", "resources": {"memory": "64GB"}}), NODES)
    with pytest.raises(ValidationError, match="resources.nodes: asks for 3 nodes"):
        check_feasible(parse_spec({"command": "x", "resources": {"gpus": 1, "nodes": 3}}), NODES)


def test_spec_messages_name_the_field_once_and_refuse_blank_commands() -> None:
    with pytest.raises(ValidationError) as ei:
        parse_spec({"command": "true", "env": {"1BAD": "x"}})
    assert "env: '1BAD' is not a valid environment variable name" in str(ei.value)
    assert "env: env:" not in str(ei.value)
    with pytest.raises(ValidationError, match="exactly one of `command` or `script`"):
        parse_spec({"command": "   "})
    assert parse_spec({"command": " ", "script": "echo hi"}).shell_command == "echo hi"


def test_max_runtime_must_be_finite_and_at_most_a_year() -> None:
    for bad in (float("nan"), float("inf"), 1e308, "400d"):
        with pytest.raises(ValidationError, match="max_runtime"):
            parse_duration_s(bad)
    assert parse_duration_s("365d") == 365 * 86400


@pytest.mark.parametrize("user", ["\u0000", "a b", "x" * 65, " ", "tab\tuser"])
def test_a_user_that_cannot_be_stored_or_shown_is_refused(user: str) -> None:
    with pytest.raises(ValidationError, match="user"):
        parse_spec({"command": "x", "user": user})
    assert parse_spec({"command": "x", "user": "alice@example.com"}).user == "alice@example.com"


def test_gpus_on_a_cluster_without_gpus_says_so() -> None:
    cpu_only = [Node(name="n0", cpus=8, memory_mb=16_000)]
    with pytest.raises(
        ValidationError, match="asks for 1 GPU per node but this cluster has no GPUs"
    ) as e:
        check_feasible(parse_spec({"command": "x", "resources": {"gpus": 1}}), cpu_only)
    assert "remove resources.gpus" in (e.value.hint or "")


def test_a_name_or_env_key_with_a_trailing_newline_is_refused() -> None:
    """`$` also matches before a final newline: "train\\n" passed as a job or project name."""
    with pytest.raises(ValidationError, match="not a valid name"):
        parse_spec({"command": "x", "name": "train\n"})
    with pytest.raises(ValidationError, match="not a valid name"):
        parse_spec({"command": "x", "project": "vision\n"})
    with pytest.raises(ValidationError, match="not a valid environment variable"):
        parse_spec({"command": "x", "env": {"A\n": "v"}})


def test_gpu_type_is_checked_as_the_scheduler_places_it() -> None:
    # words of the driver's name pass (the scheduler places them); a part of a word does not
    for want in ("H100", "nvidia h100", "NVIDIA H100"):
        check_feasible(
            parse_spec({"command": "x", "resources": {"gpus": 1, "gpu_type": want}}), NODES
        )
    with pytest.raises(ValidationError, match="no node has a 'H10' GPU") as ei:
        check_feasible(
            parse_spec({"command": "x", "resources": {"gpus": 1, "gpu_type": "H10"}}), NODES
        )
    assert "'NVIDIA H100'" in (ei.value.hint or "")
    for blank in ("", "  ", "-"):
        with pytest.raises(ValidationError, match="resources.gpu_type"):
            parse_spec({"command": "x", "resources": {"gpus": 1, "gpu_type": blank}})


# -- a value that fits no member of a union field: one problem, in the field's own words ------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"command": "x", "resources": {"memory": [1]}},
            "resources.memory: expected a size such as '16GB' or a number of megabytes, got [1]",
        ),
        (
            {"command": "x", "max_runtime": {"a": 1}},
            "max_runtime: expected a duration such as '2h' or a number of seconds, got {'a': 1}",
        ),
    ],
)
def test_a_value_of_no_union_member_is_one_problem_naming_the_field(
    body: dict[str, Any], expected: str
) -> None:
    # was one problem per member under pydantic's paths: "resources.memory.str: Input should
    # be a valid string; resources.memory.int: Input should be a valid integer"
    with pytest.raises(ValidationError) as e:
        parse_spec(body)
    assert e.value.details["problems"] == [expected]
    assert ".str" not in str(e.value) and ".int" not in str(e.value)


def test_a_long_value_is_quoted_shortened_in_the_error() -> None:
    # a 100 kB memory text came back whole in the message (and the API's answer)
    with pytest.raises(ValidationError) as e:
        parse_spec({"command": "x", "resources": {"memory": "x" * 100_000}})
    msg = str(e.value)
    assert len(msg) < 400 and "(100,002 characters)" in msg
    assert msg.startswith("invalid job spec (spec): resources.memory: cannot read 'xxx")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "name: t\ncommand: true\n",
            "command: expected text, got a boolean (true); put it in quotes as you meant it, "
            "e.g. command: 'true' (YAML and JSON read it unquoted as a boolean)",
        ),
        (
            "name: 2024\ncommand: echo\n",
            "name: expected text, got a number (2024); put it in quotes as you meant it, "
            "e.g. name: '2024' (YAML and JSON read it unquoted as a number)",
        ),
        (
            "name: t\ncommand: echo\nworkdir: 1.5\n",
            "workdir: expected text, got a number (1.5); put it in quotes as you meant it, "
            "e.g. workdir: '1.5' (YAML and JSON read it unquoted as a number)",
        ),
    ],
)
def test_an_unquoted_yaml_boolean_or_number_in_a_text_field_says_to_quote_it(
    tmp_path, text: str, said: str
) -> None:  # type: ignore[no-untyped-def]
    """It said only "command: Input should be a valid string" (``command: true`` is YAML's
    boolean true, not the program ``true``)."""
    p = tmp_path / "job.yaml"
    p.write_text(text)
    with pytest.raises(ValidationError) as ei:
        load_spec_file(p)
    assert ei.value.details["problems"] == [said]


@pytest.mark.parametrize(
    "name", ["CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"]
)
def test_env_naming_the_jobs_devices_is_refused(name: str) -> None:
    """The executor sets them from the job's allocation: `-e CUDA_VISIBLE_DEVICES=3` was
    accepted and the job saw its own GPUs (none, on a CPU job) instead."""
    with pytest.raises(ValidationError, match=f"env: {name} is set by aistack to the GPUs"):
        parse_spec({"command": "x", "env": {name: "3"}})
    assert parse_spec({"command": "x", "env": {"CUDA_LAUNCH_BLOCKING": "1"}}).env

"""Stand-ins for ``srun`` and ``scontrol``, to run a rendered batch script on this machine, and a
model of how sbatch reads ``#SBATCH`` lines (the tests that need a real Slurm are in
tests/integration/scaleout)."""

from __future__ import annotations

import stat
from pathlib import Path

from aistack.executors.base import LaunchRequest
from aistack.scheduler.types import Allocation, NodeAlloc


def fake_slurm_bin(tmp_path: Path) -> Path:
    """A folder (put it first on PATH) whose ``srun`` runs each task here, one after the
    other (``--nodes`` × ``--ntasks-per-node``, with SLURM_NODEID/LOCALID/PROCID set) and whose
    ``scontrol show hostnames LIST`` prints the comma-separated LIST one name a line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(
        "#!/bin/bash\n# scontrol show hostnames LIST\necho \"$3\" | tr ',' '\\n'\n"
    )
    (bin_dir / "srun").write_text(
        "#!/bin/bash\n"
        "# fake srun: parse --nodes/--ntasks-per-node, run each task locally in order\n"
        'for a in "$@"; do case $a in --nodes=*) N=${a#*=};; --ntasks-per-node=*) P=${a#*=};; '
        "esac; done\n"
        "while [[ $1 == --* ]]; do shift; done\n"
        "rc=0\n"
        "for ((n = 0; n < N; n++)); do for ((l = 0; l < P; l++)); do\n"
        '  SLURM_NODEID=$n SLURM_LOCALID=$l SLURM_PROCID=$((n * P + l)) "$@" || rc=$?\n'
        "done; done\n"
        "exit $rc\n"
    )
    for f in bin_dir.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def sbatch_arguments(line: str) -> list[str]:
    """The arguments of one ``#SBATCH`` line as sbatch reads them, ``_get_argument`` of
    src/sbatch/opt.c (Slurm 22.05) called until the line is used up. Its loop runs while
    ``(quoted || !isspace(c))``, tested before the escape: whitespace outside quotes ends an
    argument even right after a backslash (``a\\ b`` is ``a`` and then ``b``)."""
    args: list[str] = []
    i = 0
    while True:
        while i < len(line) and line[i] in " \t\n\v\f\r":
            i += 1
        if i == len(line):
            return args
        out: list[str] = []
        quote = ""
        escape = False
        while i < len(line) and (quote or line[i] not in " \t\n\v\f\r"):
            c = line[i]
            i += 1
            if escape:
                escape = False
            elif c == "\\":
                escape = True
                continue
            elif quote:
                if c == quote:
                    quote = ""
                    continue
            elif c in "\"'":
                quote = c
                continue
            elif c == "#":
                return args + ["".join(out)] if out else args
            out.append(c)
        assert not quote, f"sbatch: unmatched {quote} in {line!r}"
        args.append("".join(out))


def sbatch_options(script: str) -> dict[str, str]:
    """The ``--option=value`` of each ``#SBATCH`` line of ``script``, as sbatch reads them (one
    argument a line: a second one is what a real sbatch refuses)."""
    opts: dict[str, str] = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH "):
            args = sbatch_arguments(line[len("#SBATCH ") :])
            assert len(args) == 1, f"sbatch reads {args} from {line!r}"
            key, _, value = args[0].partition("=")
            opts[key] = value
    return opts


def slurm_request(tmp_path: Path, **kw: object) -> LaunchRequest:
    """A one-node, two-CPU launch request of job ``j-1`` in ``tmp_path/job``; ``kw`` replaces
    any of its fields."""
    base: dict[str, object] = dict(
        job_id="j-1",
        attempt=1,
        command="true",
        allocation=Allocation(nodes={"n1": NodeAlloc(cpus=(0, 1), memory_mb=64)}),
        job_dir=tmp_path / "job",
    )
    base.update(kw)
    return LaunchRequest(**base)  # type: ignore[arg-type]

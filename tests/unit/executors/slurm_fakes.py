"""Stand-ins for ``srun`` and ``scontrol``, to run a rendered batch script on this machine (the
tests that need a real Slurm are in tests/integration/scaleout)."""

from __future__ import annotations

import stat
from pathlib import Path


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

#!/usr/bin/env bash
# Install the real servers the integration tests start on 127.0.0.1 (Debian/Ubuntu packages):
#   PostgreSQL (initdb, pg_ctl), Slurm (slurmctld, slurmd, sbatch/squeue/scancel) and munge,
#   Slurm's accounting (slurmdbd, sacct, sacctmgr) with the MariaDB server it stores into.
# Idempotent: returns at once when everything is already installed. Needs root (or sudo).
# No daemon is enabled or started here: the tests start private ones and stop them after.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$2" ]; }

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if ! have initdb "${pg_bin:-/nonexistent}/initdb"; then need+=(postgresql); fi
if ! have slurmctld /usr/sbin/slurmctld; then need+=(slurm-wlm); fi
if ! have slurmd /usr/sbin/slurmd; then need+=(slurmd); fi
if ! have sbatch /usr/bin/sbatch; then need+=(slurm-client); fi
if ! have munged /usr/sbin/munged; then need+=(munge); fi
if ! have slurmdbd /usr/sbin/slurmdbd; then need+=(slurmdbd); fi
if ! have mariadbd /usr/sbin/mariadbd; then need+=(mariadb-server); fi
# Debian's Chromium for the dashboard's browser tests (Playwright drives /usr/bin/chromium)
if ! have chromium /usr/bin/chromium; then need+=(chromium); fi
# Node runs the dashboard's JavaScript against a stub DOM (tests/unit/web)
if ! have node /usr/bin/node; then need+=(nodejs); fi

if [ ${#need[@]} -eq 0 ]; then
    echo "install-servers: postgresql, slurm (with slurmdbd, mariadb), munge, chromium and node already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-servers: need root to apt-get install ${need[*]}" >&2
        exit 1
    fi
fi

echo "install-servers: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d: keep Debian's maintainer scripts from starting the daemons at install time
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

if ! $SUDO apt-get install -y --no-install-recommends "${need[@]}"; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends "${need[@]}"
fi
echo "install-servers: done"

#!/usr/bin/env bash
# Set up everything the tests need and run them: the README's test command.
# 1. Debian packages when missing: slapd, ldap-utils, sudo, systemd, python3-seccomp,
# openssh-server, chromium, chromium-driver, haproxy (checks docker/proxy/haproxy.cfg); 2. a virtualenv with jobsts[test]; 3. ruff format
# --check, ruff check and mypy; 4. the whole suite on SQLite; 5. the storage and job tests (-m db)
# on PostgreSQL. `make check` is the fast loop without packages or servers; this is the full run CI does.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in slapd ldap-utils sudo systemd python3-seccomp openssh-server chromium chromium-driver haproxy; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  # The tests start their own slapd and sshd on loopback ports bound to 0; the packages' system
  # services must not start (a system sshd would listen on port 22 of the CI machine). Debian's
  # maintainer scripts ask /usr/sbin/policy-rc.d first; exit 101 means "do not start". Keep one
  # that is already there (Docker images ship one), else put ours in place for this install only.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# tests/run.sh: no service starts while it installs packages.\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    own_policy=1
  fi
  trap 'if [ -n "$own_policy" ]; then $SUDO rm -f "$policy"; fi' EXIT
  $SUDO apt-get update -qq
  # noninteractive: slapd's postinst would ask questions. --no-install-recommends: chromium runs
  # headless with --disable-gpu, so it needs none of its desktop recommends (upower, mesa, printing).
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [ -n "$own_policy" ]; then $SUDO rm -f "$policy"; own_policy=""; fi
  if [[ " ${need[*]} " == *" haproxy "* ]] && [ -d /run/systemd/system ]; then
    # The tests only run `haproxy -c` on the compose stack's file; no system haproxy at boot.
    $SUDO systemctl disable --now haproxy.service >/dev/null 2>&1 || true
  fi
  if [[ " ${need[*]} " == *" openssh-server "* ]]; then
    # We installed sshd just now: make sure it neither runs nor comes back at boot.
    if [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
    elif [ -f /run/sshd.pid ]; then
      $SUDO kill "$(cat /run/sshd.pid)" 2>/dev/null || true
    fi
    if command -v ss >/dev/null && ss -Hltn 'sport = :22' | grep -q .; then
      echo "a system sshd listens on port 22 after installing openssh-server; stop it (the tests run their own)" >&2
      exit 1
    fi
  fi
fi

VENV="${JOBSTS_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e '.[test]'
export PATH="$PWD/$VENV/bin:$PATH"

ruff format --check realms authz_tables sts agent_client tests bench
ruff check realms authz_tables sts agent_client tests bench
mypy

pytest -q -p no:cacheprovider

PG_URL="${JOBSTS_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
if python -c "import sqlalchemy as s; s.create_engine('$PG_URL').connect().close()" 2>/dev/null; then
  JOBSTS_TEST_DATABASE_URL="$PG_URL" pytest -q -p no:cacheprovider -m db
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL is not reachable at $PG_URL; CI runs the storage and job tests there" >&2
  exit 1
else
  echo "note: PostgreSQL not reachable at $PG_URL; skipped the -m db run on PostgreSQL" >&2
fi

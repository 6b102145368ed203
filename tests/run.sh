#!/usr/bin/env bash
# Set up everything the tests need and run them: the README's test command.
# 1. Debian packages (slapd, ldap-utils, sudo, systemd, python3-seccomp, openssh-server) when missing; 2. a virtualenv with jobsts[test];
# 3. ruff and mypy; 4. the whole suite on SQLite; 5. the storage and job tests (-m db) on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in slapd ldap-utils sudo systemd python3-seccomp openssh-server; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # slapd's postinst would ask questions; the harness runs its own slapd, not the system one.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

VENV="${JOBSTS_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e '.[test]'
export PATH="$PWD/$VENV/bin:$PATH"

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

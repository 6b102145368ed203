#!/usr/bin/env bash
# Bootstrap a jobsts site once its STS answers: register every node with its public key, give
# each node its local authorization table and grants, and add the job manager's own grants.
# The compose stack's `bootstrap` service runs this file; on other sites run it the same way.
# It uses only the `jobsts` CLI (and python3 to read JSON and PEM keys). It is idempotent: a
# node that is registered as asked, and grants already in a table, are left alone, so a second
# run changes nothing and exits 0.
#
# Environment (required unless a default is shown):
#   JOBSTS_BOOTSTRAP_URL                  the STS base URL, the issuer base the STS advertises
#   JOBSTS_BOOTSTRAP_ADMIN_REALM          the job-manager administrator's realm
#   JOBSTS_BOOTSTRAP_ADMIN_USERNAME       the administrator's user name
#   JOBSTS_BOOTSTRAP_ADMIN_PASSWORD_FILE  a file holding the administrator's password
#   JOBSTS_BOOTSTRAP_NODES                one word per node: NODE:REALM[:TRUSTED,...[:AUTHGROUP,...]]
#   JOBSTS_BOOTSTRAP_PUBLIC_KEY           each node's public key (PEM); {node} is the node id
#                                         (default /var/lib/jobsts-pubkeys/{node}/node.pub.pem)
#   JOBSTS_BOOTSTRAP_NODE_TABLE           each node's authorization table, an SQLite file
#                                         (default /var/lib/jobsts-authz/{node}/authz.sqlite)
#   JOBSTS_BOOTSTRAP_NODE_GRANTS          each node's grants, CSV access_id,role,effect,scope
#                                         (default /opt/jobsts/grants/{node}.csv; missing: empty table)
#   JOBSTS_BOOTSTRAP_STS_TABLE            SQLAlchemy URL of the job manager's table (the STS database);
#                                         unset: the job manager's grants are left alone
#   JOBSTS_BOOTSTRAP_STS_GRANTS           its grants (default /opt/jobsts/grants/sts.csv)
#   JOBSTS_BOOTSTRAP_WAIT                 seconds to wait for the STS and the public keys (default 300)
#   JOBSTS, PYTHON                        the programs to run (default: jobsts, python3 on PATH)
#
# Exit status: 0 done, 1 a step failed, 2 the environment is incomplete.
set -euo pipefail
umask 022 # tables must not be writable by group or others: the agent refuses them otherwise

JOBSTS=${JOBSTS:-jobsts}
PYTHON=${PYTHON:-python3}
WAIT=${JOBSTS_BOOTSTRAP_WAIT:-300}
STS_TABLE=${JOBSTS_BOOTSTRAP_STS_TABLE:-}
STS_GRANTS=${JOBSTS_BOOTSTRAP_STS_GRANTS:-/opt/jobsts/grants/sts.csv}
# (The {node} defaults are not written as ${NAME:-default}: their "}" would end the expansion.)
PUBLIC_KEY='/var/lib/jobsts-pubkeys/{node}/node.pub.pem'
NODE_TABLE='/var/lib/jobsts-authz/{node}/authz.sqlite'
NODE_GRANTS='/opt/jobsts/grants/{node}.csv'
if [ -n "${JOBSTS_BOOTSTRAP_PUBLIC_KEY:-}" ]; then PUBLIC_KEY=$JOBSTS_BOOTSTRAP_PUBLIC_KEY; fi
if [ -n "${JOBSTS_BOOTSTRAP_NODE_TABLE:-}" ]; then NODE_TABLE=$JOBSTS_BOOTSTRAP_NODE_TABLE; fi
if [ -n "${JOBSTS_BOOTSTRAP_NODE_GRANTS:-}" ]; then NODE_GRANTS=$JOBSTS_BOOTSTRAP_NODE_GRANTS; fi
CSV_HEADER="access_id,role,effect,scope"

say() { printf 'bootstrap: %s\n' "$*"; }
fail() {
	printf 'bootstrap: error: %s\n' "$*" >&2
	exit 1
}
usage() {
	printf 'bootstrap: error: %s (see the top of %s)\n' "$*" "$0" >&2
	exit 2
}
# "/x/{node}/y" with node1 -> "/x/node1/y"
for_node() { printf '%s' "${1//\{node\}/$2}"; }

for name in JOBSTS_BOOTSTRAP_URL JOBSTS_BOOTSTRAP_ADMIN_REALM JOBSTS_BOOTSTRAP_ADMIN_USERNAME \
	JOBSTS_BOOTSTRAP_ADMIN_PASSWORD_FILE JOBSTS_BOOTSTRAP_NODES; do
	[ -n "${!name:-}" ] || usage "$name is not set"
done
URL=${JOBSTS_BOOTSTRAP_URL%/}
[ -r "$JOBSTS_BOOTSTRAP_ADMIN_PASSWORD_FILE" ] || usage "cannot read $JOBSTS_BOOTSTRAP_ADMIN_PASSWORD_FILE"
case $WAIT in '' | *[!0-9]*) usage "JOBSTS_BOOTSTRAP_WAIT must be a number of seconds" ;; esac

declare -a NODES=()
for spec in $JOBSTS_BOOTSTRAP_NODES; do
	IFS=: read -r node realm _ _ extra <<<"$spec"
	[ -n "$node" ] && [ -n "$realm" ] && [ -z "$extra" ] || usage "node '$spec' is not NODE:REALM[:TRUSTED,...[:AUTHGROUP,...]]"
	NODES+=("$spec")
done

# A private login session: the administrator's tokens never land in the caller's ~/.config,
# and they are revoked on the way out, whatever happens.
SESSION=$(mktemp -d)
export XDG_CONFIG_HOME=$SESSION
unset JOBSTS_URL
logged_in=
cleanup() {
	if [ -n "$logged_in" ]; then "$JOBSTS" logout --url "$URL" >/dev/null 2>&1 || true; fi
	rm -rf "$SESSION"
}
trap cleanup EXIT

# 1. Wait until the STS is ready (database, keys and directories answer).
"$PYTHON" - "$URL/readyz" "$WAIT" <<'PY' || fail "the STS at $URL did not become ready within $WAIT s"
import sys, time, urllib.error, urllib.request

url, deadline = sys.argv[1], time.monotonic() + int(sys.argv[2])
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            if answer.status == 200:
                sys.exit(0)
    except (OSError, urllib.error.URLError):
        pass
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(1)
PY
say "the STS at $URL is ready"

# 2. Log in as the job-manager administrator.
"$JOBSTS" login --url "$URL" --realm "$JOBSTS_BOOTSTRAP_ADMIN_REALM" --username "$JOBSTS_BOOTSTRAP_ADMIN_USERNAME" \
	--password-stdin <"$JOBSTS_BOOTSTRAP_ADMIN_PASSWORD_FILE" >/dev/null || fail "login as $JOBSTS_BOOTSTRAP_ADMIN_USERNAME failed"
logged_in=yes

# 3. Wait for every node's public key (each agent writes its own on first start).
waited=0
while :; do
	missing=()
	for spec in "${NODES[@]}"; do
		key=$(for_node "$PUBLIC_KEY" "${spec%%:*}")
		[ -s "$key" ] || missing+=("$key")
	done
	[ ${#missing[@]} -eq 0 ] && break
	[ "$waited" -ge "$WAIT" ] && fail "no public key after $WAIT s: ${missing[*]} (start the agents, or run jobsts agent init)"
	[ $((waited % 30)) -eq 0 ] && say "waiting for ${missing[*]}"
	sleep 1
	waited=$((waited + 1))
done

# `node show` prints JSON; once it grows a --json switch, ask for it.
show_json=()
if "$JOBSTS" node show --help 2>/dev/null | grep -q -- '--json'; then show_json=(--json); fi

# Compare a registered node (JSON on stdin) with what is asked: prints same, differs or cannot.
COMPARE='
import json, sys
import jwt
from cryptography.hazmat.primitives import serialization

node = json.load(sys.stdin)
pem, realm, trusted, groups = sys.argv[1:5]
der = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
with open(pem, "rb") as handle:
    wanted = serialization.load_pem_public_key(handle.read()).public_bytes(*der)
registered = jwt.PyJWK(node["public_jwk"]).key.public_bytes(*der)
names = lambda text: sorted(set(filter(None, text.split(","))))
want = {"realm": realm, "trusted_realms": names(trusted), "authgroups": names(groups)}
have = {"realm": node["realm"], "trusted_realms": sorted(node["trusted_realms"]),
        "authgroups": sorted(node["authgroups"])}
if wanted == registered and want == have:
    print("same")
elif (have["trusted_realms"] and not want["trusted_realms"]) or (have["authgroups"] and not want["authgroups"]):
    print("cannot")  # the CLI keeps a list it is given no value for; it cannot empty one
else:
    print("differs")
'

# 4. Register every node, or bring its registration up to date.
for spec in "${NODES[@]}"; do
	IFS=: read -r node realm trusted groups _ <<<"$spec"
	key=$(for_node "$PUBLIC_KEY" "$node")
	options=(--realm "$realm" --public-key "$key")
	IFS=, read -r -a list <<<"${trusted:-}"
	for name in "${list[@]}"; do [ -n "$name" ] && options+=(--trusted-realm "$name"); done
	IFS=, read -r -a list <<<"${groups:-}"
	for name in "${list[@]}"; do [ -n "$name" ] && options+=(--authgroup "$name"); done
	if shown=$("$JOBSTS" node show "$node" --url "$URL" "${show_json[@]}" 2>&1); then
		verdict=$(printf '%s' "$shown" | "$PYTHON" -c "$COMPARE" "$key" "$realm" "${trusted:-}" "${groups:-}")
		case $verdict in
		same) say "node $node: registered already, unchanged" ;;
		differs)
			"$JOBSTS" node update "$node" --url "$URL" "${options[@]}" >/dev/null
			say "node $node: registration updated (realm $realm, key $key)"
			;;
		*) fail "node $node: registered with trusted realms or authgroups that $spec does not list; the CLI cannot remove them all: jobsts node unregister $node, then run again" ;;
		esac
	elif printf '%s' "$shown" | grep -q 'node\.unknown'; then
		"$JOBSTS" node register "$node" --url "$URL" "${options[@]}" >/dev/null
		say "node $node: registered in realm $realm${trusted:+, trusting $trusted}"
	else
		fail "node $node: jobsts node show failed: $shown"
	fi
done

# Import a grants file into a table (jobsts authz import adds what is missing, removes nothing).
# The table goes in the environment, not on the command line, where `ps` would show a database URL.
import_grants() { # TABLE FILE LABEL
	local table=$1 file=$2 label=$3 output line
	if [ -f "$file" ]; then
		output=$(JOBSTS_AUTHZ_TABLE=$table "$JOBSTS" authz import "$file")
	else
		output=$(printf '%s\n' "$CSV_HEADER" | JOBSTS_AUTHZ_TABLE=$table "$JOBSTS" authz import -)
	fi
	while IFS= read -r line; do say "$label: $line"; done <<<"$output"
}

# 5. Each node's local table. A new table is built beside its final name and renamed into
# place, so an agent waiting for the file never opens a half-made one.
for spec in "${NODES[@]}"; do
	node=${spec%%:*}
	table=$(for_node "$NODE_TABLE" "$node")
	grants=$(for_node "$NODE_GRANTS" "$node")
	mkdir -p "$(dirname "$table")"
	if [ -e "$table" ]; then
		import_grants "$table" "$grants" "table of $node ($table)"
	else
		building="$table.new.$$"
		rm -f "$building"
		import_grants "$building" "$grants" "table of $node ($table), new"
		mv -f "$building" "$table"
	fi
done

# 6. The job manager's own table: who may submit jobs at all.
if [ -n "$STS_TABLE" ]; then
	[ -f "$STS_GRANTS" ] || fail "JOBSTS_BOOTSTRAP_STS_TABLE is set but $STS_GRANTS does not exist"
	import_grants "$STS_TABLE" "$STS_GRANTS" "the job manager's table"
fi
say "done: ${#NODES[@]} node(s)"

#!/bin/sh
# Entry point of the agent image: make the node's key on first start, publish the public key,
# wait for the node's authorization table, then run the agent (or the command given).
#
#   JOBSTS_AGENT_CONFIG          the configuration the agent reads (default /etc/jobsts/agent.toml)
#   JOBSTS_AGENT_CONFIG_SOURCE   optional: a file installed as JOBSTS_AGENT_CONFIG at each start.
#                                A bind-mounted file keeps its owner on the host, and the agent
#                                refuses a configuration that root (or its own account) does not own.
#   JOBSTS_AGENT_PUBLIC_KEY_COPY optional: where to publish the public key (for the bootstrap)
#   JOBSTS, PYTHON               the programs to run (default: jobsts, python3 on PATH)
#
# The private key is made here, by `jobsts agent init`, and never leaves this container's volume.
set -eu
umask 077

JOBSTS=${JOBSTS:-jobsts}
PYTHON=${PYTHON:-python3}
CONFIG=${JOBSTS_AGENT_CONFIG:-/etc/jobsts/agent.toml}
say() { printf 'jobsts-agent: %s\n' "$*" >&2; }

if [ -n "${JOBSTS_AGENT_CONFIG_SOURCE:-}" ]; then
	install -m 0600 "$JOBSTS_AGENT_CONFIG_SOURCE" "$CONFIG.new"
	mv -f "$CONFIG.new" "$CONFIG"
fi
[ -r "$CONFIG" ] || {
	say "no configuration at $CONFIG"
	exit 2
}

# node id, realm, STS URL, key file, key algorithm, table: one per line (relative paths are
# relative to the configuration file, as the agent reads them).
settings=$("$PYTHON" - "$CONFIG" <<'PY'
import os, sys, tomllib

path = sys.argv[1]
with open(path, "rb") as handle:
    agent = tomllib.load(handle).get("agent", {})
base = os.path.dirname(os.path.abspath(path))
for value in (agent.get("node_id", ""), agent.get("realm", ""),
              os.environ.get("JOBSTS_AGENT_STS_URL") or agent.get("sts_url", ""),
              os.path.join(base, agent.get("key_file", "node.key")), agent.get("key_algorithm", "ES256"),
              os.path.join(base, agent.get("authz_table", "authz.sqlite"))):
    print(value)
PY
)
{
	read -r node
	read -r realm
	read -r sts
	read -r key
	read -r algorithm
	read -r table
} <<EOF
$settings
EOF
public="${key%.key}.pub.pem"

if [ ! -e "$key" ]; then
	# First start: a new key pair, made beside its final place and moved there, so a restart
	# in the middle never leaves a key without its public half.
	directory=$(dirname "$key")
	mkdir -p "$directory"
	scratch=$(mktemp -d "$directory/.init.XXXXXX")
	"$JOBSTS" agent init --node "$node" --realm "$realm" --sts "$sts" --dir "$scratch" --algorithm "$algorithm" >/dev/null
	mv -f "$scratch/node.pub.pem" "$public"
	mv -f "$scratch/node.key" "$key"
	rm -rf "$scratch"
	say "node $node: made a new key pair; its public key is $public"
fi
[ -s "$public" ] || {
	say "no public key $public next to $key"
	exit 2
}

if [ -n "${JOBSTS_AGENT_PUBLIC_KEY_COPY:-}" ] && ! cmp -s "$public" "$JOBSTS_AGENT_PUBLIC_KEY_COPY"; then
	mkdir -p "$(dirname "$JOBSTS_AGENT_PUBLIC_KEY_COPY")"
	install -m 0644 "$public" "$JOBSTS_AGENT_PUBLIC_KEY_COPY.new"
	mv -f "$JOBSTS_AGENT_PUBLIC_KEY_COPY.new" "$JOBSTS_AGENT_PUBLIC_KEY_COPY"
	say "node $node: published the public key at $JOBSTS_AGENT_PUBLIC_KEY_COPY"
fi

# The bootstrap registers the node, then creates its table (renamed into place when complete):
# once the table is there, the agent can start.
waited=0
until [ -s "$table" ]; do
	if [ $((waited % 30)) -eq 0 ]; then
		say "node $node: waiting for $table; the bootstrap registers the node and creates it (docker/bootstrap.sh)"
	fi
	sleep 1
	waited=$((waited + 1))
done

if [ $# -eq 0 ]; then
	set -- "$JOBSTS" agent run --config "$CONFIG"
fi
exec "$@"

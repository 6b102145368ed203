#!/bin/sh
# Make the compose stack's secrets, one file each, in docker/secrets/ (or the directory given).
# A file that exists is kept: run it again at will. Run it as root (sudo), because compose
# bind-mounts secret files with their owner and mode on the host, and the STS containers run
# as uid 10001: the files they read must be owned by that uid and mode 0600 (jobsts refuses a
# master key file that group or others may read).
#
#   master_key          the STS master key (32 random bytes, base64url)       read by the STS
#   postgres_password   the database password (random)                       STS, postgres, bootstrap
#   ldap_sts_password   the directories' service account password           read by the STS
#   ldap_root_password  the directories' root DN password (random)           the ldap containers
#   admin_password      the job-manager administrator's password            the bootstrap
#
# The demo directories are seeded from tests/ldap/*.ldif, where the service account's password
# is "sts-password" and admin's is "admin-password"; those two files hold these values. With
# your own directories, write your own values into them before the first start.
set -eu
umask 077

directory=${1:-$(dirname "$0")/secrets}
sts_uid=${JOBSTS_STS_UID:-10001}
mkdir -p "$directory"
chown_failed=

random() { head -c "$1" /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

secret() { # NAME VALUE READ_BY_STS
	path="$directory/$1"
	if [ -e "$path" ]; then
		echo "kept $path"
	else
		printf '%s\n' "$2" >"$path"
		echo "made $path"
	fi
	chmod 0600 "$path"
	if [ "$3" = sts ] && ! chown "$sts_uid:$sts_uid" "$path" 2>/dev/null; then
		chown_failed="$chown_failed $path"
	fi
}

secret master_key "$(random 32)" sts
secret postgres_password "$(random 24)" sts
secret ldap_sts_password "sts-password" sts
secret ldap_root_password "$(random 24)" root
secret admin_password "admin-password" root

if [ -n "$chown_failed" ]; then
	echo "the STS (uid $sts_uid) must own these files; run: sudo chown $sts_uid:$sts_uid$chown_failed" >&2
	exit 1
fi

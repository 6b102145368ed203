#!/bin/sh
# Entry point of the STS image: secrets from files, then the command.
#
# For every variable NAME_FILE in the environment where NAME ends in PASSWORD, SECRET or TOKEN,
# NAME is set to the contents of that file (trailing newlines dropped) and NAME_FILE is
# removed, the convention of the official database images. So a secret lives in a mounted file
# (a compose or swarm secret), never in the compose file:
# JOBMGR_LDAP_PASSWORD_FILE=/run/secrets/ldap_sts_password gives the STS the JOBMGR_LDAP_PASSWORD
# its configuration names in bind_password_env, and PGPASSWORD_FILE gives libpq its password.
#
# Other *_FILE variables are paths to their programs (SSL_CERT_FILE is OpenSSL's CA bundle) and
# stay as they are; so do names that start with JOBSTS_, whose files jobsts reads itself
# (JOBSTS_MASTER_KEY_FILE is the path of the master key file, checked for mode 0600).
set -eu

for assignment in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\(PASSWORD\|SECRET\|TOKEN\)\)_FILE=.*/\1/p'); do
	case $assignment in
	JOBSTS_*) continue ;;
	esac
	file=$(printenv "${assignment}_FILE")
	already=$(printenv "$assignment" || true)
	if [ -n "$already" ]; then
		printf 'jobsts: both %s and %s_FILE are set; set one\n' "$assignment" "$assignment" >&2
		exit 2
	fi
	if [ ! -r "$file" ]; then
		printf 'jobsts: %s_FILE: cannot read %s (uid %s; see docker/README.md, "Secrets")\n' \
			"$assignment" "$file" "$(id -u)" >&2
		exit 2
	fi
	value=$(cat "$file")
	export "$assignment=$value"
	unset "${assignment}_FILE"
done
exec "$@"

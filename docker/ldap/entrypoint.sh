#!/bin/sh
# Start slapd for realm $REALM (suffix $SUFFIX) and, on first start, seed it over LDAP so the
# memberof overlay computes memberOf, exactly as the test harness does.
# The root password comes from ROOT_PASSWORD_FILE (a compose secret) or ROOT_PASSWORD.
set -eu
if [ -n "${ROOT_PASSWORD_FILE:-}" ]; then
  ROOT_PASSWORD=$(cat "$ROOT_PASSWORD_FILE")
fi
: "${REALM:?set REALM}" "${SUFFIX:?set SUFFIX}" "${ROOT_PASSWORD:?set ROOT_PASSWORD or ROOT_PASSWORD_FILE}"
umask 077 # slapd.conf holds the root password
mkdir -p /run/slapd "/var/lib/ldap/$REALM"
sed -e "s|@SUFFIX@|$SUFFIX|g" -e "s|@REALM@|$REALM|g" -e "s|@ROOT_PASSWORD@|$ROOT_PASSWORD|g" \
  /opt/jobsts-ldap/slapd.conf.template > /run/slapd/slapd.conf
slapd -f /run/slapd/slapd.conf -h "ldap://0.0.0.0:389/" -d 0 &
pid=$!
for _ in $(seq 1 50); do
  ldapsearch -x -H ldap://127.0.0.1:389 -b '' -s base >/dev/null 2>&1 && break
  sleep 0.2
done
if [ ! -e "/var/lib/ldap/$REALM/.seeded" ]; then
  # -e relax lets the root DN keep the seed files' entryUUID values.
  ldapadd -x -H ldap://127.0.0.1:389 -D "cn=root,$SUFFIX" -w "$ROOT_PASSWORD" -e relax \
    -f "/opt/jobsts-ldap/seeds/$REALM.ldif" >/dev/null
  touch "/var/lib/ldap/$REALM/.seeded"
fi
wait "$pid"

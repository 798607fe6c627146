#!/bin/sh
# Managed by provision (role db_health): edits here are replaced on the next run.
# The database health agent: one HTTP request on standard input (a connection from the web servers'
# database endpoint, accepted by provision-db-health.socket), one answer on standard output.
#   GET /write  200 when this server takes writes: read_only OFF and not replicating (a primary)
#   GET /read   200 when it is a replica fit to read from: both threads running, lag <= $1 seconds
# Anything else, or no answer from the local server: 503 (404 for an unknown path). It asks the
# server over its local socket with the monitoring account (read-only privileges; credentials from
# systemd's credential store, never in argv).
set -u
max_lag=$1
cr=$(printf '\r')

reply() {
  printf 'HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n' "$1" $((${#2} + 1)) "$2"
  exit 0
}

IFS=' ' read -r method target _ || exit 0
# The rest of the request, to its empty line: closing with unread bytes would reset the connection
# before the checker reads the answer. Bounded by the unit's RuntimeMaxSec.
while IFS= read -r line; do
  case $line in '' | "$cr") break ;; esac
done
[ "$method" = GET ] || reply '405 Method Not Allowed' 'GET only'

sql() {
  mysql --defaults-extra-file="$CREDENTIALS_DIRECTORY/client.cnf" --connect-timeout=2 --batch "$@" 2>/dev/null
}
# One row of SHOW SLAVE STATUS as "Field: value" lines; empty when the server replicates from nobody.
field() {
  printf '%s\n' "$replication" | sed -n "s/^ *$1: //p" | head -n 1
}

read_only=$(sql --skip-column-names -e 'SELECT @@read_only') || reply '503 Service Unavailable' 'no answer from the local database server'
replication=$(sql --vertical -e 'SHOW SLAVE STATUS') || reply '503 Service Unavailable' 'no replication status from the local database server'

case $target in
/write)
  [ "$read_only" = 0 ] || reply '503 Service Unavailable' 'read-only: not the primary'
  [ -z "$replication" ] || reply '503 Service Unavailable' 'writable but replicating: not a primary'
  reply '200 OK' 'writable primary'
  ;;
/read)
  [ -n "$replication" ] || reply '503 Service Unavailable' 'not a replica'
  io=$(field Slave_IO_Running)
  applier=$(field Slave_SQL_Running)
  lag=$(field Seconds_Behind_Master)
  [ "$io" = Yes ] && [ "$applier" = Yes ] || reply '503 Service Unavailable' "replication threads IO $io, SQL $applier"
  case $lag in '' | *[!0-9]*) reply '503 Service Unavailable' "lag unknown ($lag)" ;; esac
  [ "$lag" -le "$max_lag" ] || reply '503 Service Unavailable' "lag $lag s above $max_lag s"
  reply '200 OK' "replica, lag $lag s"
  ;;
*) reply '404 Not Found' 'GET /write or /read' ;;
esac

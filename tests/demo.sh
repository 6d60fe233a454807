#!/usr/bin/env bash
# demo.sh BUILD_DIR: a throw-away instance under /tmp/postd-demo listening on 127.0.0.1:2525.
set -euo pipefail
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$build/src"
demo=${POSTD_DEMO_DIR:-/tmp/postd-demo}

etc="$demo/etc"
mkdir -p "$etc" "$demo/spool" "$demo/data" "$demo/Maildir"
chown postfix "$demo/data"
# Mail to user@localhost lands in the demo's own Maildir; deliveries to an alias path run as
# default_privs (nobody), so that account owns it.
chown nobody "$demo/Maildir"
printf 'postmaster: root\nMAILER-DAEMON: postmaster\nuser: %s/Maildir/\n' "$demo" >"$etc/aliases"
cp "$top/conf/main.cf" "$etc/main.cf"
sed 's/^smtp \{1,\}inet /2525      inet /' "$top/conf/master.cf" >"$etc/master.cf"
"$bin/postconf" -c "$etc" -e \
        "queue_directory = $demo/spool" \
        "data_directory = $demo/data" \
        "daemon_directory = $bin" \
        "command_directory = $bin" \
        "inet_interfaces = 127.0.0.1" \
        "inet_protocols = ipv4" \
        "mydestination = localhost, \$myhostname" \
        "home_mailbox = Maildir/" \
        "maillog_file = $demo/maillog" \
        "alias_maps = hash:$etc/aliases" \
        "alias_database = hash:$etc/aliases"
"$bin/newaliases" -c "$etc"

echo "== postd demo instance in $demo"
echo "== postconf -n (settings of this instance)"
"$bin/postconf" -c "$etc" -n
echo "== postconf -M (services)"
"$bin/postconf" -c "$etc" -M
echo "== postfix check"
"$bin/postfix" -c "$etc" check && echo "(no problems found)"

missing=()
for daemon in master smtpd cleanup qmgr local; do
        [ -x "$bin/$daemon" ] || missing+=("$daemon")
done
if [ ${#missing[@]} -gt 0 ]; then
        echo "NOTE: ${missing[*]} not built: this build cannot move mail." >&2
        exit 1
fi
echo "== starting the instance in the foreground (Ctrl-C stops it); log: $demo/maillog"
echo "   try:  swaks --server 127.0.0.1:2525 --to user@localhost"
echo "   then: ls $demo/Maildir/new    (user@localhost is an alias of that Maildir)"
exec "$bin/postfix" -c "$etc" start-fg

#!/bin/sh
# Derive a packaged configuration file from the sample in etc/ (called by
# debian/rules):
#   sh debian/make-conf.sh index etc/flarei.conf > .../etc/flarei.conf
#   sh debian/make-conf.sh node  etc/flared.conf > .../etc/flared.conf
# The sample is copied with these settings forced (an existing active line is
# replaced in place, a missing one appended):
#   both:  data-dir = /var/lib/flare, server-name = 127.0.0.1,
#          admin-networks = 127.0.0.0/8, ::1/128 (docs/security.md)
#   node:  index-servers = 127.0.0.1:12120 (the local flarei); an active
#          deprecated index-server-name/-port line is commented out.
# The result is checked; the build fails if a forced setting is missing.
set -eu
kind=$1
src=$2
case "$kind" in
    index) keys="data-dir server-name admin-networks" ;;
    node) keys="data-dir server-name index-servers admin-networks" ;;
    *) echo "make-conf.sh: unknown kind '$kind' (index|node)" >&2; exit 1 ;;
esac
[ -r "$src" ] || { echo "make-conf.sh: cannot read $src" >&2; exit 1; }

out=$(awk -v kind="$kind" -v keys="$keys" -v src="$src" '
function key_of(line,   k) {
    k = line
    sub(/#.*/, "", k)
    if (k !~ /=/) return ""
    sub(/=.*/, "", k)
    gsub(/[ \t\r]/, "", k)
    return k
}
BEGIN {
    want["data-dir"] = "/var/lib/flare"
    want["server-name"] = "127.0.0.1"
    want["index-servers"] = "127.0.0.1:12120"
    want["admin-networks"] = "127.0.0.0/8, ::1/128"
    n = split(keys, order, " ")
    for (i = 1; i <= n; i++) forced[order[i]] = 1
    print "# Installed by the Debian package \"flare\" from " src " of flare-rs."
    printf "# The package sets:"
    for (i = 1; i <= n; i++) printf " %s = %s%s", order[i], want[order[i]], (i < n ? "," : "")
    print "."
    print "# data-dir must match DATA_" (kind == "index" ? "INDEX" : "NODE") " in /etc/default/flare (the init"
    print "# script finds the pid file there) and be writable by the user \"flare\"."
    print ""
}
{
    k = key_of($0)
    if (k in forced) {
        if (!(k in done)) { print k " = " want[k]; done[k] = 1 }
        next
    }
    if (kind == "node" && (k == "index-server-name" || k == "index-server-port")) {
        print "# " $0 "    # disabled by the Debian package: index-servers is set"
        next
    }
    if (kind == "node" && !("index-servers" in done) && $0 ~ /^[ \t]*#[ \t]*index-servers[ \t]*=/) {
        print "index-servers = " want["index-servers"]
        done["index-servers"] = 1
        next
    }
    if (!("admin-networks" in done) && $0 ~ /^[ \t]*#[ \t]*admin-networks[ \t]*=/) {
        print "admin-networks = " want["admin-networks"]
        done["admin-networks"] = 1
        next
    }
    print
}
END {
    for (i = 1; i <= n; i++) if (!(order[i] in done)) print order[i] " = " want[order[i]]
}
' "$src")

# Check: every forced key is set exactly once, to the forced value.
for k in $keys; do
    lines=$(printf '%s\n' "$out" | grep -c "^[[:space:]]*${k}[[:space:]]*=" || true)
    if [ "$lines" != 1 ]; then
        echo "make-conf.sh: $src: expected one active '$k' line, got $lines" >&2
        exit 1
    fi
done
printf '%s\n' "$out"

#!/bin/bash
# test_mount_crash.sh - kill -9 of the daemon while a file is held open: the
# mount point does not stay broken ("Transport endpoint is not connected"),
# the dead daemon's pin rows are cleared, and a new mount serves the same
# files from the cache without fetching a byte again (counted at the hub).
. "$(dirname "$0")/lib.sh"

start_hub
make_repo org/crash Crash-Q4_K_M.gguf --tensors 6 --tensor-bytes 2000000
publish_trust org/crash
hub_put org/crash
REF=$(mfs add --endpoint "$HUB" org/crash 2>"$WORK/add.err") || die "add: $(cat "$WORK/add.err")"
WANT=$(published_sha org/crash Crash-Q4_K_M.gguf)

mount_fg
[ "$(sha_of "$MNT/$REF")" = "$WANT" ] || fail "cold sha256 differs"
exec 3<"$MNT/$REF"
dead=$DAEMON
[ "$(sqlite3 "$STORE/index.db" "SELECT count(*) FROM pins WHERE pid = $dead")" -ge 1 ] ||
	fail "no pin row for the open file"

kill -9 "$dead"
wait "$dead" 2>/dev/null
DAEMON=""
# fusermount3's auto_unmount watcher removes the dead mount, but it can lose a
# race with the kernel (it acts only on ENOTCONN); then the next mount does.
exec 3<&-
for _ in $(seq 50); do ls "$MNT" >/dev/null 2>&1 && break; sleep 0.1; done

hub_ctl reset
mount_fg
[ "$(sqlite3 "$STORE/index.db" "SELECT count(*) FROM pins WHERE pid = $dead")" -eq 0 ] ||
	fail "the dead daemon's pin rows were not cleared"
[ "$(sha_of "$MNT/$REF")" = "$WANT" ] || fail "warm sha256 after the crash differs"
n=$(hub_ranges "*" | wc -l)
[ "$n" -eq 0 ] || fail "$n range requests after the restart; the cache was not reused"
unmount "$MNT"

# The race lost on purpose: the watcher goes first, then the daemon, so the
# mount point is left dead ("Transport endpoint is not connected"). The next
# mount detaches it and serves again.
mount_fg
watcher=$(pgrep -f "fusermount3 .*auto_unmount.* -- $MNT\$" | head -1)
[ -n "$watcher" ] || die "no auto_unmount watcher for $MNT"
kill -9 "$watcher"
kill -9 "$DAEMON"
wait "$DAEMON" 2>/dev/null
DAEMON=""
ls "$MNT" >/dev/null 2>"$WORK/ls.err" && die "the mount point is not dead; the case did not happen"
grep -q "not connected" "$WORK/ls.err" || fail "unexpected error on the dead mount: $(cat "$WORK/ls.err")"
mount_fg
[ "$(sha_of "$MNT/$REF")" = "$WANT" ] || fail "sha256 after remounting over a dead mount differs"
grep -q "detached the dead mount" "$WORK/daemon.log" || fail "the new mount did not say it detached the dead one"
[ "$(awk -v m="$MNT" '$2 == m' /proc/mounts | wc -l)" -eq 1 ] || fail "mounts stacked at $MNT"
unmount "$MNT"
chunks_consistent || fail "a chunk file does not match its name"
check_log
finish

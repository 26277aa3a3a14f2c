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
wait_unmounted "$MNT" || fail "the mount stayed after the daemon died"
ls "$MNT" >/dev/null 2>"$WORK/ls.err" || fail "mount point broken: $(cat "$WORK/ls.err")"
exec 3<&-

hub_ctl reset
mount_fg
[ "$(sqlite3 "$STORE/index.db" "SELECT count(*) FROM pins WHERE pid = $dead")" -eq 0 ] ||
	fail "the dead daemon's pin rows were not cleared"
[ "$(sha_of "$MNT/$REF")" = "$WANT" ] || fail "warm sha256 after the crash differs"
n=$(hub_ranges "*" | wc -l)
[ "$n" -eq 0 ] || fail "$n range requests after the restart; the cache was not reused"
unmount "$MNT"
chunks_consistent || fail "a chunk file does not match its name"
check_log
finish

#!/bin/bash
# test_mount_helper.sh - mounting like a filesystem: `mount -t modelfs STORE
# MNT -o opts` and an fstab line (read from a private fstab with mount -T)
# through mount.modelfs, in background mode (the command returns once the
# mount answers); `umount` and SIGTERM unmount cleanly and the daemon exits.
# mount(8) finds helpers in /sbin only, so a symlink to the built helper is
# placed there for the test and removed on exit (skipped if one exists).
. "$(dirname "$0")/lib.sh"
: "${MOUNT_MODELFS:?MOUNT_MODELFS must name the mount.modelfs binary}"
command -v mount >/dev/null || skip "mount(8) is missing"

HELPER=/sbin/mount.modelfs
if [ -e "$HELPER" ] || [ -L "$HELPER" ]; then
	skip "$HELPER exists already; not replacing it"
fi
ln -s "$MOUNT_MODELFS" "$HELPER" || skip "cannot place $HELPER"
trap 'rm -f "$HELPER"; cleanup' EXIT

make_repo org/h H-Q4_K_M.gguf --tensors 3 --tensor-bytes 1500000
publish_trust org/h
REF=$(mfs add --endpoint "file://$REPO" org/h 2>/dev/null) || die "add failed"
WANT=$(published_sha org/h H-Q4_K_M.gguf)
daemon_pid() { sqlite3 "$STORE/index.db" "SELECT pid FROM mounts WHERE mountpoint = '$MNT'"; }

# ---- mount -t modelfs ----------------------------------------------------------
mount -t modelfs "$STORE" "$MNT" -o quota=1G,nosuid 2>"$WORK/mount.err" ||
	die "mount -t modelfs failed: $(cat "$WORK/mount.err")"
mountpoint -q "$MNT" || die "mount -t modelfs returned before the mount was live"
findmnt -n -o FSTYPE,SOURCE "$MNT" | grep -q "fuse.modelfs *$STORE" ||
	fail "findmnt: $(findmnt -n -o FSTYPE,SOURCE "$MNT")"
[ "$(sha_of "$MNT/$REF")" = "$WANT" ] || fail "sha256 through mount -t differs"
pid=$(daemon_pid)
[ -n "$pid" ] || fail "the daemon did not register its mount"
umount "$MNT" || fail "umount failed"
wait_unmounted "$MNT" || fail "still mounted after umount"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && { fail "daemon $pid still running after umount"; PIDS+=("$pid"); }

# ---- an fstab line -------------------------------------------------------------
echo "$STORE $MNT modelfs defaults,_netdev,nofail 0 0" >"$WORK/fstab"
mount -T "$WORK/fstab" "$MNT" 2>"$WORK/mount.err" || die "mount from fstab failed: $(cat "$WORK/mount.err")"
mountpoint -q "$MNT" || die "fstab mount is not live"
[ "$(sha_of "$MNT/$REF")" = "$WANT" ] || fail "sha256 through the fstab mount differs"

# ---- SIGTERM: clean unmount --------------------------------------------------
pid=$(daemon_pid)
[ -n "$pid" ] || die "no daemon registered for the fstab mount"
kill -TERM "$pid"
wait_unmounted "$MNT" || fail "SIGTERM did not unmount"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && { fail "daemon $pid still running after SIGTERM"; PIDS+=("$pid"); }
[ "$(sqlite3 "$STORE/index.db" "SELECT count(*) FROM mounts")" -eq 0 ] ||
	fail "mount row left after a clean exit"

# ---- errors are reported by the command, not lost in the background ----------
out=$("$MODELFS" --store "$STORE" mount "$WORK/nosuch" 2>&1) && fail "mount of a missing dir succeeded"
grep -q "does not exist" <<<"$out" || fail "missing mount point message: $out"
out=$("$MODELFS" --store "$STORE" mount "$MNT" -o bogus_option 2>&1) && fail "mount with a bad option succeeded"
mountpoint -q "$MNT" && fail "mounted despite a bad option"
echo "bad option: $out" | head -3
finish

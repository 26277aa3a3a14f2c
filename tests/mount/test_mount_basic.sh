#!/bin/bash
# test_mount_basic.sh - a real mount over a file:// repository: the layout
# and alias links, sha256 of every file through the mount equal to the
# published digest (cold, then warm after a remount), du growing with
# resident bytes while du --apparent-size shows the logical size, the
# user.modelfs.* attributes, a split GGUF's shards side by side, an artifact
# added while mounted appearing without a remount, open pins visible in the
# store while a file is held open, and EROFS for every write.
. "$(dirname "$0")/lib.sh"

make_repo org/split Model-Q4_K_M.gguf --tensors 8 --tensor-bytes 3000000 --split 3
make_repo org/single Single-Q8_0.gguf --tensors 4 --tensor-bytes 2500000
publish_trust org/split
publish_trust org/single
REF1=$(mfs add --endpoint "file://$REPO" org/split 2>/dev/null) || die "add org/split failed"
REF2=$(mfs add --endpoint "file://$REPO" org/single 2>/dev/null) || die "add org/single failed"
COMMIT1=$(echo "$REF1" | sed -n 's|^org/split@\([0-9a-f]\{40\}\)/.*|\1|p')
[ -n "$COMMIT1" ] || die "unexpected canonical_ref '$REF1'"

mount_fg
findmnt -n -o FSTYPE "$MNT" | grep -q "fuse.modelfs" || fail "fstype is not fuse.modelfs"

# ---- layout ------------------------------------------------------------------
[ -f "$MNT/$REF1" ] || die "$MNT/$REF1 missing; tree: $(find "$MNT" | head -20)"
[ -f "$MNT/$REF2" ] || fail "$MNT/$REF2 missing"
[ "$(readlink "$MNT/org/split@main")" = "split@$COMMIT1" ] ||
	fail "alias split@main -> '$(readlink "$MNT/org/split@main")'"
[ -f "$MNT/org/split@main/Model-Q4_K_M-00002-of-00003.gguf" ] || fail "alias does not resolve"
ls "$MNT/org" | grep -qx "split@$COMMIT1" || fail "ls org lacks split@$COMMIT1"
[ "$(stat -c %a "$MNT/$REF1")" = 444 ] || fail "file mode $(stat -c %a "$MNT/$REF1")"

# Split GGUF: every shard beside the first, and readable as GGUF from there.
DIR1=$(dirname "$MNT/$REF1")
for k in 1 2 3; do
	[ -f "$DIR1/Model-Q4_K_M-0000$k-of-00003.gguf" ] || fail "shard $k not beside shard 1"
done

# ---- du before reading -------------------------------------------------------
declare -A SIZE
total=0
for f in "$DIR1"/*.gguf "$MNT/$REF2"; do
	SIZE[$f]=$(stat -c %s "$f")
	total=$((total + SIZE[$f]))
done
du_before=$(du -s -B1 "$MNT/org" | cut -f1)
apparent=$(du -s -B1 --apparent-size "$MNT/org" | cut -f1)
[ "$du_before" -lt "$total" ] || fail "du before reading ($du_before) is not below the size ($total)"

# ---- cold reads: every byte equals the published digest -----------------------
check_all() {
	local f rel repo
	for f in "$DIR1"/*.gguf; do
		rel=$(basename "$f")
		[ "$(sha_of "$f")" = "$(published_sha org/split "$rel")" ] || fail "$1: sha256 of $rel differs"
	done
	[ "$(sha_of "$MNT/$REF2")" = "$(published_sha org/single Single-Q8_0.gguf)" ] ||
		fail "$1: sha256 of Single-Q8_0.gguf differs"
}
check_all cold
"$MFS_GEN" dump "$MNT/$REF1" >"$WORK/dump.txt" 2>&1 || fail "mfs-gen dump through the mount failed"

# ---- du after reading: resident bytes grew (st_blocks refreshes within ~1 s) --
du_after=0
for _ in $(seq 50); do
	du_after=$(du -s -B1 "$MNT/org" | cut -f1)
	[ "$du_after" -ge "$total" ] && break
	sleep 0.1
done
[ "$du_after" -gt "$du_before" ] || fail "du did not grow: $du_before -> $du_after"
[ "$du_after" -ge "$total" ] || fail "du after reading everything: $du_after < $total"
apparent2=$(du -s -B1 --apparent-size "$MNT/org" | cut -f1)
[ "$apparent" = "$apparent2" ] || fail "apparent size changed: $apparent -> $apparent2"
[ "$apparent" -ge "$total" ] || fail "du --apparent-size $apparent < $total"
echo "du: before $du_before, after $du_after, apparent $apparent bytes"

# ---- extended attributes -----------------------------------------------------
if command -v getfattr >/dev/null; then
	getfattr -d -m user.modelfs "$MNT/$REF1" >"$WORK/attrs.txt" 2>&1 || fail "getfattr failed"
	for name in canonical_ref distribution_id identity sha256 source trust state \
		resident_bytes chunks last_eviction gguf.architecture gguf.context_length; do
		grep -q "^user.modelfs.$name=" "$WORK/attrs.txt" || fail "attribute $name missing"
	done
	attr() { getfattr --only-values -n "user.modelfs.$1" "$MNT/$REF1" 2>/dev/null; }
	[ "$(attr canonical_ref)" = "$REF1" ] || fail "canonical_ref = '$(attr canonical_ref)'"
	[ "$(attr sha256)" = "$(published_sha org/split Model-Q4_K_M-00001-of-00003.gguf)" ] ||
		fail "sha256 attribute differs"
	[ "$(attr distribution_id)" = "Model-Q4_K_M" ] || fail "distribution_id = '$(attr distribution_id)'"
	[ "$(attr last_eviction)" = "none" ] || fail "last_eviction = '$(attr last_eviction)'"
	attr state | grep -q "installed resident" || fail "state = '$(attr state)'"
	chunks=$(attr chunks)
	[ "${chunks%/*}" = "${chunks#*/}" ] || fail "chunks = '$chunks' after a full read"
	[ "$(attr resident_bytes)" = "${SIZE[$DIR1/Model-Q4_K_M-00001-of-00003.gguf]}" ] ||
		fail "resident_bytes = '$(attr resident_bytes)'"
	getfattr -n user.modelfs.nosuch "$MNT/$REF1" >/dev/null 2>&1 && fail "unknown attribute answered"
else
	echo "note: getfattr missing; attributes not checked"
fi

# ---- pins: an open file pins its artifact, visible to other processes --------
pins() { sqlite3 "$STORE/index.db" "SELECT count(*) FROM pins WHERE pid = $DAEMON"; }
exec 3<"$MNT/$REF2"
[ "$(pins)" -ge 1 ] || fail "no pin row while a file is open"
exec 3<&-
for _ in $(seq 50); do [ "$(pins)" -eq 0 ] && break; sleep 0.1; done
[ "$(pins)" -eq 0 ] || fail "pin row left after the last close"

# ---- read-only ----------------------------------------------------------------
erofs() {
	local out
	out=$("$@" 2>&1) && { fail "'$*' succeeded"; return; }
	grep -q "Read-only file system" <<<"$out" || fail "'$*' failed without EROFS: $out"
}
erofs touch "$DIR1/new"
erofs sh -c "echo x >>'$MNT/$REF2'"
erofs sh -c "echo x >'$MNT/$REF2'"
erofs mkdir "$DIR1/d"
erofs rm -f "$MNT/$REF2"
erofs mv "$MNT/$REF2" "$DIR1/moved"
erofs ln -s x "$DIR1/link"
erofs truncate -s 0 "$MNT/$REF2"
erofs chmod 600 "$MNT/$REF2"
if command -v setfattr >/dev/null; then
	erofs setfattr -n user.x -v 1 "$MNT/$REF2"
fi

# ---- an artifact added while mounted appears without a remount ---------------
make_repo org/late Late-Q4_K_M.gguf --tensors 2 --tensor-bytes 100000
publish_trust org/late
REF3=$(mfs add --endpoint "file://$REPO" org/late 2>/dev/null) || die "add org/late failed"
seen=0
for _ in $(seq 50); do
	[ -f "$MNT/$REF3" ] && { seen=1; break; }
	sleep 0.1
done
[ "$seen" = 1 ] || fail "$REF3 did not appear under the mount"
[ "$(sha_of "$MNT/$REF3")" = "$(published_sha org/late Late-Q4_K_M.gguf)" ] ||
	fail "sha256 of the late artifact differs"

# ---- warm: remount, same bytes ----------------------------------------------
unmount "$MNT"
mount_fg
check_all warm
unmount "$MNT"

chunks_consistent || fail "a chunk file does not match its name"
check_log
finish

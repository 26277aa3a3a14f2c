#!/bin/bash
# test_store_foreign.sh - root given a store that another user controls
# (issue 9, finding 20).
#
# Attack: whoever owns a store's directories can replace chunks/, records/,
# tmp/ or quarantine/ with symbolic links to somewhere else; root, using that
# store, then read, wrote, renamed and deleted files there (the cleaning of
# stale tmp/ files alone deletes old files in whatever tmp/ points at).
# Here a second local user (mfs-storeowner, created for the test and removed by
# the EXIT trap) owns a store directory whose subdirectories are links to a
# root-owned directory outside, filled with bait: an old file in its tmp/
# (what the tmp/ cleaning deletes), a chunk-named file, a record, an index.
#
# Promises: root refuses a store owned by another non-root user, with a
# message naming the way to accept it (--allow-other-owner); accepted that
# way, a store whose directories (or index.db, or a chunks/xx directory, or
# the store path itself) are links is still refused; each refusal is clear
# and leaves every file outside exactly as it was (names, inodes, sizes,
# times, modes, contents). And a store of real directories owned by that
# user does open with --allow-other-owner.
. "$(dirname "$0")/../mount/lib.sh"

for tool in useradd userdel; do
	command -v "$tool" >/dev/null || skip "$tool is needed"
done
ATT=mfs-storeowner
id "$ATT" >/dev/null 2>&1 && skip "user $ATT exists already (left by another run?)"
trap 'userdel "$ATT" 2>/dev/null; cleanup' EXIT
useradd -M -N -g users -s /usr/sbin/nologin "$ATT" || die "useradd failed"

OUT="$WORK/outside"
mkdir -p "$OUT"/{chunks/ab,records,tmp,quarantine,manifests,partial}
echo bait >"$OUT/tmp/old.XXXXXX"
touch -d '2 hours ago' "$OUT/tmp/old.XXXXXX"
echo bait >"$OUT/chunks/ab/ab$(printf '0%.0s' $(seq 62))"
echo '{"bait": 1}' >"$OUT/records/0000.json"
echo bait >"$OUT/quarantine/kept"
echo bait >"$OUT/index.db"
snapshot() {
	find "$OUT" -printf '%p %i %s %T@ %C@ %m %u\n' | sort
	find "$OUT" -type f -exec sha256sum {} + | sort
}
snapshot >"$WORK/before"

# store_case NAME: a fresh store directory of the attacker's, real subdirectories
store_case() {
	local d="$WORK/$1"
	mkdir -p "$d"/{chunks,records,manifests,tmp,quarantine,partial}
	chown -R "$ATT" "$d"
	echo "$d"
}
# refused LABEL REGEX ARGS...: modelfs fails, its error matches, outside unchanged
refused() {
	local label=$1 re=$2
	shift 2
	if timeout 30 "$MODELFS" "$@" ls >"$WORK/out" 2>"$WORK/err"; then
		fail "$label: accepted"
	elif ! grep -Eq "$re" "$WORK/err"; then
		fail "$label: error '$(cat "$WORK/err")' does not match '$re'"
	fi
	snapshot >"$WORK/after"
	cmp -s "$WORK/before" "$WORK/after" || fail "$label: files outside changed: $(diff "$WORK/before" "$WORK/after" | head -5)"
	echo "$label: refused: $(head -1 "$WORK/err")"
}

# 1. owned by another user, every directory a link outside
S=$(store_case all)
for sub in chunks records tmp quarantine manifests partial; do
	rmdir "$S/$sub" && ln -s "$OUT/$sub" "$S/$sub"
done
ln -s "$OUT/index.db" "$S/index.db"
chown -h "$ATT" "$S"/*
refused "owned by $ATT" "belongs to another user.*--allow-other-owner" --store "$S"
refused "owned by $ATT, accepted, links" "symbolic link" --store "$S" --allow-other-owner

# 2. each directory alone a link (accepted owner)
for sub in chunks records tmp quarantine; do
	S=$(store_case "one-$sub")
	rmdir "$S/$sub" && ln -s "$OUT/$sub" "$S/$sub" && chown -h "$ATT" "$S/$sub"
	refused "$sub/ a link" "'$S/$sub' is a symbolic link" --store "$S" --allow-other-owner
done

# 3. index.db a link; a chunks/xx directory a link; the store path a link
S=$(store_case index-link)
ln -s "$OUT/index.db" "$S/index.db" && chown -h "$ATT" "$S/index.db"
refused "index.db a link" "index.db. is a symbolic link" --store "$S" --allow-other-owner
S=$(store_case xx-link)
ln -s "$OUT/chunks/ab" "$S/chunks/ab" && chown -h "$ATT" "$S/chunks/ab"
refused "chunks/ab a link" "chunks/ab' is a symbolic link" --store "$S" --allow-other-owner
mkdir -p "$WORK/real" && ln -s "$OUT" "$WORK/store-link"
refused "the store a link" "is a symbolic link" --store "$WORK/store-link"

# 4. a link inside a store root owns is refused as well (root's own store)
S="$WORK/rootstore"
"$MODELFS" --store "$S" ls >/dev/null 2>&1 || fail "a fresh store of root's own does not open"
rmdir "$S/quarantine" && ln -s "$OUT/quarantine" "$S/quarantine"
refused "root's store, quarantine/ a link" "quarantine' is a symbolic link" --store "$S"

# 5. real directories of that user, accepted explicitly: opens
S=$(store_case fine)
timeout 30 "$MODELFS" --store "$S" --allow-other-owner ls >/dev/null 2>"$WORK/err" ||
	fail "a real store of $ATT with --allow-other-owner: $(cat "$WORK/err")"
refused "a real store of $ATT, not accepted" "belongs to another user" --store "$S"
finish

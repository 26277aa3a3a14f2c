#!/bin/bash
# test_cache_control.sh - the quota and cache control with the real binary:
# a quota smaller than two models, both pulled: usage stays under the quota
# and `why` names the quota eviction of the first; pin makes evict and rm
# refuse; unpin, then evict works and leaves evidence; rm removes the
# artifact from ls, the index and records/; gc cleans stale files; bad input
# is refused with clear errors.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

keygen
# two models of about 16 MiB (four 4 MiB chunks each)
seed=1
for m in a b; do
	mkdir -p "$REPO/acme/$m"
	"$MFS_GEN" gguf "$REPO/acme/$m/$m-Q4_K_M.gguf" --tensors 8 --tensor-bytes 2000000 \
		--seed $seed >/dev/null || die "mfs-gen gguf $m"
	seed=$((seed + 1))
	publish "acme/$m"
done
expect_ok mfs trust add "$WORK/k.pub" --prefix acme/

QUOTA=$((24 << 20))
usage() { sqlite3 "$STORE/index.db" 'SELECT coalesce(sum(size), 0) FROM resident'; }

# ---- the quota --------------------------------------------------------------
expect_ok mfs gc --quota 24M
grep -q "quota 24.0 MiB" <<<"$OUT" || fail "gc --quota 24M printed: $OUT"
expect_ok mfs gc --json
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["quota_bytes"]==24<<20 and o["high_pct"]==90 and o["low_pct"]==70, o' "$OUT" ||
	fail "gc --json does not show the quota: $OUT"
expect_fail mfs gc --quota lots --msg "bad size 'lots'"
expect_fail mfs gc --high 50 --low 60 --msg "low .*high"
expect_fail mfs gc --high 0 --msg "bad percentage"
# the mount's quota options are checked before anything is mounted or changed
mkdir -p "$WORK/mnt"
expect_fail mfs mount "$WORK/mnt" -o quota_high=500 --msg "bad quota_high '500'"
expect_fail mfs mount "$WORK/mnt" -o quota_low=0 --msg "bad quota_low '0'"
expect_fail mfs mount "$WORK/mnt" -o quota=12Q --msg "bad quota '12Q'"
expect_fail mfs mount "$WORK/mnt" -o quota=1M,quota_high=50,quota_low=60 --msg "low .*high"
expect_ok mfs gc --json
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["quota_bytes"]==24<<20 and o["high_pct"]==90 and o["low_pct"]==70, o' "$OUT" ||
	fail "a refused mount changed the quota: $OUT"
! grep -q " $WORK/mnt " /proc/mounts || fail "a refused mount left a mount behind"

expect_ok mfs pull --endpoint "$ENDPOINT" acme/a || die "pull a"
A=$OUT
[ "$(usage)" -le "$QUOTA" ] || fail "usage $(usage) over the quota after pulling a"
expect_ok mfs pull --endpoint "$ENDPOINT" acme/b || die "pull b"
B=$OUT
U=$(usage)
[ "$U" -le "$QUOTA" ] || fail "usage $U over the quota $QUOTA after pulling two models"
assert_chunks_consistent "after two pulls under a quota"

ls_json
json_check "[x['resident_bytes'] for x in a if '/b@' in x['canonical_ref']] == [x['size'] for x in a if '/b@' in x['canonical_ref']]" \
	"b (pulled last) is not wholly resident"
json_check "[x['resident_bytes'] < x['size'] for x in a if '/a@' in x['canonical_ref']] == [True]" \
	"a (least recently read) lost nothing to the quota"

# why names the quota eviction, for a path under a mount too
expect_ok mfs why "/mnt/models/$A"
grep -q "quota" <<<"$OUT" || fail "why $A does not name a quota eviction: $OUT"
grep -q "installed: yes" <<<"$OUT" || fail "why $A: $OUT"
expect_ok mfs why --json "$A"
python3 -c '
import json, sys
o = json.loads(sys.argv[1])
assert o["installed"] and not o["active"], o
assert o["resident_bytes"] < o["size"], o
assert o["evictions"] and o["evictions"][0]["reason"] == "quota" and o["evictions"][0]["bytes"] > 0, o
' "$OUT" || fail "why --json $A: $OUT"
N=$(sqlite3 "$STORE/index.db" "SELECT count(*) FROM evictions WHERE reason = 'quota' AND artifact = '$A'")
[ "$N" -gt 0 ] || fail "no evidence row for the quota eviction of $A"

# ---- pin: evict and rm refuse ----------------------------------------------
expect_ok mfs pin "$B"
grep -q "pinned $B" <<<"$OUT" || fail "pin printed: $OUT"
ls_json
json_check "[x['pinned'] for x in a if x['canonical_ref'] == '$B'] == [True]" "pin is not shown by ls"
expect_fail mfs evict "$B" --msg "pinned.*unpin"
expect_fail mfs rm "$B" --msg "pinned.*unpin"
expect_ok mfs gc --quota 1M
[ "$(sqlite3 "$STORE/index.db" "SELECT count(*) FROM evictions WHERE artifact = '$B'")" = 0 ] ||
	fail "gc evicted bytes of the pinned $B"
expect_ok mfs why "$B"
grep -q "active" <<<"$OUT" || fail "why does not say $B is active: $OUT"
expect_ok mfs gc --quota none
grep -q "no quota" <<<"$OUT" || fail "gc --quota none printed: $OUT"

# ---- unpin: evict works, with evidence --------------------------------------
expect_ok mfs unpin "$B"
expect_ok mfs evict "$B"
grep -q "evicted 16.0 MiB of $B\|evicted .* of $B" <<<"$OUT" || fail "evict printed: $OUT"
ls_json
json_check "[x['resident_bytes'] for x in a if x['canonical_ref'] == '$B'] == [0]" "evict left bytes of $B"
expect_ok mfs why --json "$B"
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["evictions"][0]["reason"]=="manual", o' "$OUT" ||
	fail "why after evict does not show a manual eviction: $OUT"
assert_chunks_consistent "after evict"

# ---- rm ---------------------------------------------------------------------
NREC=$(ls "$STORE/records" | wc -l)
expect_ok mfs rm acme/b
grep -q "removed $B" <<<"$OUT" || fail "rm printed: $OUT"
ls_json
json_check "[x for x in a if x['canonical_ref'] == '$B'] == []" "rm left $B in ls"
json_check "len(a) == 1" "rm removed more than one artifact"
[ "$(ls "$STORE/records" | wc -l)" -eq $((NREC - 1)) ] || fail "rm left the record of $B"
for t in "artifacts WHERE canonical_ref = '$B'" "files WHERE name = 'b'" \
	"artifact_files WHERE file_id NOT IN (SELECT id FROM files)" \
	"chunks WHERE file_id NOT IN (SELECT id FROM files)"; do
	[ "$(sqlite3 "$STORE/index.db" "SELECT count(*) FROM $t")" = 0 ] || fail "rm left rows in $t"
done
expect_ok mfs why "$B"
grep -q "installed: no" <<<"$OUT" || fail "why after rm: $OUT"
expect_fail mfs rm "$B" --msg "no installed artifact matches"
expect_fail mfs evict acme/nothing --msg "no installed artifact matches"
expect_fail mfs why acme/x@main/nothing.gguf --msg "not an installed file"
expect_fail mfs why just-a-name --msg "does not name a file"
expect_fail mfs pin --msg "expected one REF"
expect_fail mfs rm a b --msg "expected one REF"
rc=0; mfs rm >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "rm without REF exited $rc, expected 2"
for c in pin unpin evict rm gc why; do
	expect_ok mfs "$c" --help
	grep -q "usage: modelfs $c" <<<"$OUT" || fail "$c --help: $OUT"
done

# the removed model can be added again
expect_ok mfs add --endpoint "$ENDPOINT" acme/b
[ "$OUT" = "$B" ] || fail "add after rm printed '$OUT'"

# ---- gc: stale files ---------------------------------------------------------
touch -d '2 hours ago' "$STORE/tmp/stale.XXXX"
touch -d '2 days ago' "$STORE/partial/old.part"
touch "$STORE/partial/new.part"
mkdir -p "$STORE/chunks/00"
printf 'x' >"$STORE/chunks/00/00$(printf '%062d' 7)"
touch -d '2 hours ago' "$STORE/chunks/00/00$(printf '%062d' 7)"
expect_ok mfs gc
[ ! -e "$STORE/tmp/stale.XXXX" ] || fail "gc left a stale tmp/ file"
[ ! -e "$STORE/partial/old.part" ] || fail "gc left an old partial download"
[ -e "$STORE/partial/new.part" ] || fail "gc removed a recent partial download"
[ ! -e "$STORE/chunks/00/00$(printf '%062d' 7)" ] || fail "gc left an unindexed chunk file"
assert_chunks_consistent "after gc"

finish

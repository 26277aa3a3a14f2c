#!/bin/bash
# test_verify_repair.sh - `modelfs verify` after damage to the cache on disk
# (product.md §6): one chunk altered in place, one truncated, one deleted.
# verify must find all three, quarantine the damaged files, fetch and verify
# them again, and leave a store where every chunk hashes to its name. Then the
# index itself is lost (deleted, and separately replaced by garbage): the
# inventory is rebuilt from the records and chunks, and verify passes.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$REPO/acme/tiny"
"$MFS_GEN" gguf "$REPO/acme/tiny/tiny-Q4_K_M.gguf" --tensors 8 --tensor-bytes 2000000 >/dev/null
SIZE=$(stat -c %s "$REPO/acme/tiny/tiny-Q4_K_M.gguf")
publish acme/tiny --chunk-size 1048576
MANIFEST="$REPO/acme/tiny/.modelfs/manifest.json"
expect_ok mfs trust add "$WORK/k.pub" --prefix acme/ || die "trust add failed"
expect_ok mfs pull --endpoint "$ENDPOINT" acme/tiny || die "pull failed"
REF=$OUT
expect_ok mfs verify
grep -qE "0 bad chunk\(s\), 0 unrepaired" <<<"$OUT" || fail "verify of a clean store: $OUT"
ls_json
cp "$WORK/ls.json" "$WORK/ls.before.json"
json_check "a[0]['resident_bytes'] == $SIZE" "not fully resident after pull"

chunk() { # chunk N: path of the Nth chunk of the model file
	local d
	d=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files"][0]["chunks"][int(sys.argv[2])])' \
		"$MANIFEST" "$1")
	echo "$STORE/chunks/${d:0:2}/$d"
}
ALTERED=$(chunk 3)
TRUNCATED=$(chunk 7)
DELETED=$(chunk 11)
for f in "$ALTERED" "$TRUNCATED" "$DELETED"; do
	[ -f "$f" ] || die "no chunk file $f after pull"
done
[ "$(sha256 "$ALTERED")" = "$(basename "$ALTERED")" ] || die "chunk 3 is not named by its digest"

chmod u+w "$ALTERED" "$TRUNCATED"
# flip one byte in the middle of chunk 3
old=$(od -An -tu1 -j 500000 -N1 "$ALTERED" | tr -d ' ')
printf "\\x$(printf %02x $(((old ^ 0xff) & 0xff)))" | dd of="$ALTERED" bs=1 seek=500000 conv=notrunc status=none
ALTERED_SHA=$(sha256 "$ALTERED")
[ "$ALTERED_SHA" != "$(basename "$ALTERED")" ] || die "the byte flip did not change chunk 3"
truncate -s 1000 "$TRUNCATED"
TRUNCATED_SHA=$(sha256 "$TRUNCATED")
rm -f "$DELETED"

capture mfs verify && rc=0 || rc=$?
echo "verify after damage (exit $rc): $OUT $ERR"
[ "$rc" -eq 0 ] || fail "verify exited $rc after repairing; stderr: $ERR"
grep -q "repaired" <<<"$OUT" || fail "verify did not say 'repaired': $OUT"
grep -qE "verified 1 file\(s\).* 3 bad chunk\(s\), 0 unrepaired" <<<"$OUT" ||
	fail "verify did not count the altered, truncated and deleted chunks as 3 bad: $OUT"

# The damaged files are kept in quarantine/ for inspection, not served.
found_altered=0 found_truncated=0
for q in "$STORE"/quarantine/*; do
	[ -f "$q" ] || continue
	case $(sha256 "$q") in
	"$ALTERED_SHA") found_altered=1 ;;
	"$TRUNCATED_SHA") found_truncated=1 ;;
	esac
done
[ "$found_altered" = 1 ] || fail "the altered chunk is not in quarantine/: $(ls "$STORE/quarantine")"
[ "$found_truncated" = 1 ] || fail "the truncated chunk is not in quarantine/: $(ls "$STORE/quarantine")"

assert_chunks_consistent "after verify repaired the damage"
for f in "$ALTERED" "$TRUNCATED" "$DELETED"; do
	[ -f "$f" ] || fail "chunk $(basename "$f") was not fetched again"
done
ls_json
json_check "a[0]['resident_bytes'] == a[0]['size'] == $SIZE and a[0]['state'] == 'resident'" \
	"not fully resident after the repair"
expect_ok mfs verify
grep -qE "verified 1 file\(s\).* 0 bad chunk\(s\), 0 unrepaired" <<<"$OUT" || fail "second verify: $OUT"
expect_ok mfs status --json
python3 -c 'import json,sys; c = json.loads(sys.argv[1])["counters"]; assert c.get("corrupt_chunks", 0) >= 2, c' "$OUT" ||
	fail "status counters do not show the corrupt chunks: $OUT"

# Damage that verify cannot repair: the repository lost its bytes too.
chmod u+w "$ALTERED"
printf '\x00\x01' | dd of="$ALTERED" bs=1 seek=10 conv=notrunc status=none
mv "$REPO/acme/tiny/tiny-Q4_K_M.gguf" "$WORK/away.gguf"
capture mfs verify && rc=0 || rc=$?
[ "$rc" -ne 0 ] || fail "verify exited 0 though a bad chunk could not be fetched again: $OUT"
grep -qE "1 bad chunk\(s\), 1 unrepaired" <<<"$OUT" || fail "verify did not report the unrepaired file: $OUT"
grep -qi "repair failed" <<<"$ERR" || fail "verify did not say the repair failed: $ERR"
assert_chunks_consistent "after an unrepairable chunk"
[ ! -e "$ALTERED" ] || fail "the chunk that could not be repaired is still in chunks/"
ls_json
json_check "a[0]['resident_bytes'] == $SIZE - 1048576" "the unrepaired chunk still counts as resident"
mv "$WORK/away.gguf" "$REPO/acme/tiny/tiny-Q4_K_M.gguf"
# the bad chunk was dropped, not kept: nothing bad is left for verify to find,
# and a pull brings it back
expect_ok mfs verify
grep -qE " 0 bad chunk\(s\), 0 unrepaired" <<<"$OUT" || fail "verify once the repository is back: $OUT"
expect_ok mfs pull --endpoint "$ENDPOINT" acme/tiny
ls_json
json_check "a[0]['resident_bytes'] == $SIZE" "not fully resident before the index tests"

# ---- the index deleted: rebuilt from records and chunks -----------------------
same_inventory() {
	python3 - "$WORK/ls.before.json" "$WORK/ls.json" "$1" <<'EOF' || fail "$1: inventory differs: $(cat "$WORK/ls.json")"
import json, sys
b, a = (json.load(open(p)) for p in sys.argv[1:3])
assert len(a) == len(b) == 1, a
for k in ("canonical_ref", "distribution_id", "identity", "format", "trust", "commit", "size", "metadata"):
    assert a[0][k] == b[0][k], (k, a[0][k], b[0][k])
assert [f["path"] for f in a[0]["files"]] == [f["path"] for f in b[0]["files"]]
assert a[0]["resident_bytes"] == a[0]["size"], "resident bytes not recovered"
EOF
}
rm -f "$STORE"/index.db*
expect_ok mfs ls || fail "ls after the index was deleted"
grep -qF "$REF" <<<"$OUT" || fail "ls after the index was deleted does not list $REF: $OUT"
ls_json
same_inventory "index deleted"
expect_ok mfs verify
grep -qE "verified 1 file\(s\).* 0 bad chunk\(s\), 0 unrepaired" <<<"$OUT" || fail "verify after rebuild: $OUT"
assert_chunks_consistent "after the index was rebuilt"
[ "$(sqlite3 "$STORE/index.db" 'PRAGMA integrity_check')" = ok ] || fail "rebuilt index fails integrity_check"

# ---- the index replaced by garbage ------------------------------------------------
rm -f "$STORE"/index.db*
head -c 65536 /dev/urandom >"$STORE/index.db"
expect_ok mfs ls || fail "ls with a garbage index"
grep -qF "$REF" <<<"$OUT" || fail "ls with a garbage index does not list $REF: $OUT"
ls_json
same_inventory "index garbage"
expect_ok mfs verify
grep -qE "0 bad chunk\(s\), 0 unrepaired" <<<"$OUT" || fail "verify after a garbage index: $OUT"

# ---- the index deleted while a chunk is damaged: the rebuilt index must not
# take the chunk file on trust; the next use (pull's whole-file check) hashes
# it, quarantines it and fetches it again ---------------------------------------
chmod u+w "$ALTERED"
printf '\x42' | dd of="$ALTERED" bs=1 seek=4096 conv=notrunc status=none
DAMAGED_SHA=$(sha256 "$ALTERED")
[ "$DAMAGED_SHA" != "$(basename "$ALTERED")" ] || die "the last byte change did nothing"
rm -f "$STORE"/index.db*
expect_ok mfs ls --json
expect_ok mfs pull --endpoint "$ENDPOINT" acme/tiny
assert_chunks_consistent "after a pull over a rebuilt index with a damaged chunk"
q=0
for f in "$STORE"/quarantine/*; do
	[ -f "$f" ] && [ "$(sha256 "$f")" = "$DAMAGED_SHA" ] && q=1
done
[ "$q" = 1 ] || fail "the chunk damaged before the rebuild was not quarantined"
expect_ok mfs verify
grep -qE "0 bad chunk\(s\), 0 unrepaired" <<<"$OUT" || fail "final verify: $OUT"
ls_json
same_inventory "at the end"
assert_chunks_consistent "at the end"

finish

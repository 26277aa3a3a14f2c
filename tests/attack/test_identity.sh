#!/usr/bin/env bash
# test_identity.sh - the identity model under attack (issue 9, findings 1-3):
# two test hubs with their own roots play the publisher's hub and a hostile
# mirror that serves whatever commit directories and manifests it likes.
#
#  1. rollback: once sequence 2 of acme/m was admitted on main, the older
#     genuinely signed sequence 1 is refused on main from a second mirror,
#     from the hub spelled http://HOST:PORT/. or with a trailing slash, as
#     refs/heads/main (and a tag as refs/tags/v1), after `rm` of the newer
#     release and after the index is deleted and rebuilt; by its explicit
#     commit it is still allowed; the mount's @main keeps the newer release.
#  2. one commit id, two genuine manifests (sequences 1 and 2): the second is
#     refused, the records keep sequence 1 and the mount and `verify` agree
#     with them; a hub-admitted file at a path a later signed manifest lists
#     with other bytes is refused, naming the path and both roots; `verify`
#     fails on a signed file whose served claims differ from its manifest.
#  3. a key trusted for acme/ and hub checksums for everything: a server that
#     hides .modelfs/ gets nothing of acme/ admitted.
set -u
. "$(dirname "$0")/../mount/lib.sh"

HUBPY="${MFS_SOURCE_DIR:-$(dirname "$0")/../..}/tests/hub/testhub.py"
[ -f "$HUBPY" ] || skip "tests/hub/testhub.py is missing"

C1=1111111111111111111111111111111111111111
C2=2222222222222222222222222222222222222222
CX=abababababababababababababababababababab
CH=cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd
CL=efefefefefefefefefefefefefefefefefefefef
CF=0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f

# start_hub_at ROOT NAME: a test hub serving ROOT; its URL in REPLY.
start_hub_at() {
	mkdir -p "$1"
	python3 "$HUBPY" "$1" --ready "$WORK/$2.ready" --lifetime 500 >"$WORK/$2.log" 2>&1 &
	PIDS+=("$!")
	for _ in $(seq 100); do [ -s "$WORK/$2.ready" ] && break; sleep 0.1; done
	[ -s "$WORK/$2.ready" ] || die "test hub $2 did not start: $(cat "$WORK/$2.log")"
	REPLY="http://127.0.0.1:$(cut -d' ' -f2 "$WORK/$2.ready")"
}

# put ROOT ORG/NAME COMMIT DIR: DIR's files (with its .modelfs/) as COMMIT.
put() {
	mkdir -p "$1/$2/$3"
	cp -a "$4/." "$1/$2/$3/"
}

# refs ROOT ORG/NAME MAIN [V1]: where main (and tag v1) point; read by the
# hub at every request, so a hub can move them while the test runs.
refs() {
	printf '{"branches": {"main": "%s"}, "tags": {%s}}\n' "$3" \
		"${4:+\"v1\": \"$4\"}" >"$1/$2/refs.json"
}

# release DIR SEED SEQ REPO: a GGUF pair signed as sequence SEQ of REPO.
release() {
	mkdir -p "$1"
	"$MFS_GEN" gguf "$1/m-Q4_K_M.gguf" --tensors 2 --tensor-bytes 120000 --seed "$2" \
		>/dev/null || die "mfs-gen failed"
	"$MFS_GEN" gguf "$1/m-Q8_0.gguf" --tensors 2 --tensor-bytes 90000 --seed $(($2 + 50)) \
		>/dev/null || die "mfs-gen failed"
	mfs publish --key "$WORK/k.key" --repo "$4" --sequence "$3" --chunk-size 64K "$1" \
		>/dev/null || die "publish $1 failed"
}

# unsigned DIR: a copy of DIR's model files without .modelfs/ (hidden).
unsigned() {
	mkdir -p "$2"
	cp "$1"/*.gguf "$2/"
}

arts() { [ -f "$STORE/index.db" ] || { echo 0; return; }; q "SELECT count(*) FROM artifacts"; }

# refused REGEX CMD...: CMD fails, its error matches REGEX, nothing is added.
refused() {
	local re=$1 before
	shift
	before=$(arts)
	if "$@" >"$WORK/out" 2>"$WORK/err"; then
		fail "'$*' succeeded; expected a refusal matching '$re'"
		return
	fi
	grep -Eq "$re" "$WORK/err" || fail "'$*': error '$(cat "$WORK/err")' does not match '$re'"
	[ "$(arts)" = "$before" ] || fail "'$*' was refused but the artifact count changed"
}

ok() { "$@" >"$WORK/out" 2>"$WORK/err" || fail "'$*' failed: $(cat "$WORK/err")"; }

# state REPO REF: the sequence rollback.json holds for REPO, the test key and REF.
state() {
	python3 - "$STORE/rollback.json" "$1" "$KEY" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(sum(e["sequence"] for e in d["refs"]
          if (e["repo"], e["key_id"], e["ref"]) == tuple(sys.argv[2:5])))
EOF
}

mfs keygen "$WORK/k" >"$WORK/keygen.out" || die "keygen failed"
KEY=$(sed -n 's/^key id: //p' "$WORK/keygen.out")
release "$WORK/r1" 1 1 acme/m
release "$WORK/r2" 2 2 acme/m
release "$WORK/t1" 3 1 acme/two
release "$WORK/t2" 4 2 acme/two
release "$WORK/l1" 5 1 acme/late
unsigned "$WORK/r1" "$WORK/hidden"
mkdir -p "$WORK/evil"
"$MFS_GEN" gguf "$WORK/evil/m-Q8_0.gguf" --tensors 2 --tensor-bytes 90000 --seed 99 >/dev/null

A=$WORK/hubA B=$WORK/hubB
start_hub_at "$A" hubA; HA=$REPLY
start_hub_at "$B" hubB; HB=$REPLY
put "$A" acme/m $C1 "$WORK/r1"; put "$A" acme/m $C2 "$WORK/r2"; refs "$A" acme/m $C2 $C2
put "$B" acme/m $C1 "$WORK/r1"; refs "$B" acme/m $C1 $C1

mfs trust add "$WORK/k.pub" --prefix acme/ >/dev/null 2>&1 || die "trust add failed"

# ---- 1. rollback --------------------------------------------------------------
ok mfs add --endpoint "$HA" acme/m:Q4_K_M
ok mfs add --endpoint "$HA" acme/m@v1:Q4_K_M
[ "$(state acme/m main)" = 2 ] || fail "rollback.json holds $(state acme/m main) for main, not 2"
[ "$(state acme/m v1)" = 2 ] || fail "rollback.json holds $(state acme/m v1) for v1, not 2"

refused "rollback refused.*sequence 2.*sequence 1" mfs add --endpoint "$HB" acme/m:Q4_K_M
# The publisher's hub itself moves main and v1 back: no spelling of it helps.
refs "$A" acme/m $C1 $C1
refused "rollback refused" mfs add --endpoint "$HA/." acme/m:Q4_K_M
refused "rollback refused" mfs add --endpoint "$HA/" acme/m:Q4_K_M
refused "rollback refused" mfs add --endpoint "$HA//" acme/m:Q4_K_M
refused "rollback refused" mfs add --endpoint "$HB" acme/m@refs/heads/main:Q4_K_M
refused "rollback refused" mfs add --endpoint "$HB" acme/m@refs/tags/v1:Q4_K_M
refused "rollback refused" mfs add --endpoint "$HB" "acme/m@v1:Q4_K_M"

# rm of the newer release forgets nothing.
ok mfs rm "acme/m@$C2/m-Q4_K_M.gguf"
[ "$(arts)" = 0 ] || fail "rm left $(arts) artifacts"
refused "rollback refused" mfs add --endpoint "$HB" acme/m:Q4_K_M

# Nor does losing the index: the state is a file beside the records.
rm -f "$STORE"/index.db "$STORE"/index.db-wal "$STORE"/index.db-shm
refused "rollback refused" mfs add --endpoint "$HB" acme/m:Q4_K_M
[ -f "$STORE/index.db" ] || fail "the index was not rebuilt"
[ "$(state acme/m main)" = 2 ] || fail "rollback.json lost main's sequence"

# An explicit commit may still be older (the user asked for that release).
ok mfs add --endpoint "$HB" "acme/m@$C1:Q4_K_M"
[ "$(q "SELECT sequence FROM artifacts WHERE commit_id = '$C1'")" = 1 ] ||
	fail "acme/m@$C1 is not installed at sequence 1"
refused "rollback refused" mfs add --endpoint "$HB" acme/m:Q4_K_M
[ "$(state acme/m main)" = 2 ] || fail "an explicit commit changed the state of main"

# Forward again: the same sequence from any spelling is fine.
refs "$A" acme/m $C2 $C2
ok mfs add --endpoint "$HA/." acme/m:Q4_K_M
[ "$(q "SELECT count(*) FROM artifacts WHERE commit_id = '$C2' AND sequence = 2")" = 1 ] ||
	fail "sequence 2 of acme/m is not installed again"

# ---- 2. one commit id, two genuine manifests --------------------------------------
put "$A" acme/two $CX "$WORK/t1"; refs "$A" acme/two $CX
put "$B" acme/two $CX "$WORK/t2"; refs "$B" acme/two $CX
ok mfs add --endpoint "$HA" acme/two:Q4_K_M
refused "installed from key $KEY \(manifest sequence 1\).*same commit from key $KEY \(manifest sequence 2\)" \
	mfs add --endpoint "$HB" acme/two:Q4_K_M
refused "same commit" mfs add --endpoint "$HB" "acme/two@$CX:Q4_K_M"
[ "$(q "SELECT sequence FROM artifacts WHERE name = 'two'")" = 1 ] ||
	fail "the index says acme/two is sequence $(q "SELECT sequence FROM artifacts WHERE name = 'two'")"
grep -l '"two"' "$STORE"/records/*.json | xargs grep -h '"sequence"' | grep -q '"sequence": 1' ||
	fail "the record of acme/two does not say sequence 1"
[ "$(state acme/two main)" = 1 ] || fail "a refused admission raised the rollback state"

# ---- 3. a hidden manifest does not downgrade a keyed prefix -------------------------
mfs trust hub >/dev/null 2>&1 || die "trust hub failed"
put "$A" acme/hidden $CH "$WORK/hidden"; refs "$A" acme/hidden $CH
put "$A" other/free $CF "$WORK/hidden"; refs "$A" other/free $CF
refused "carries no signed manifest.*key $KEY is trusted for 'acme/'.*never on hub checksums" \
	mfs add --endpoint "$HA" acme/hidden:Q4_K_M
[ "$(q "SELECT count(*) FROM artifacts WHERE org = 'acme' AND trust = 'hub'")" = 0 ] ||
	fail "something of acme/ was admitted on hub checksums"
# Hub checksums still work where no key reaches: the refusal is the key's.
ok mfs add --endpoint "$HA" other/free:Q4_K_M

# ---- the mount agrees with the records ---------------------------------------------
mount_fg
[ "$(readlink "$MNT/acme/m@main")" = "m@$C2" ] ||
	fail "acme/m@main -> '$(readlink "$MNT/acme/m@main")', not the newer release"
[ "$(sha_of "$MNT/acme/m@main/m-Q4_K_M.gguf")" = "$(sha_of "$WORK/r2/m-Q4_K_M.gguf")" ] ||
	fail "acme/m@main does not serve release 2"
[ "$(sha_of "$MNT/acme/two@main/m-Q4_K_M.gguf")" = "$(sha_of "$WORK/t1/m-Q4_K_M.gguf")" ] ||
	fail "acme/two serves other bytes than its sequence-1 record"
unmount "$MNT"
OUT=$(mfs verify 2>&1) || fail "verify of a consistent store failed: $OUT"
grep -q "0 unrepaired, 0 not as signed" <<<"$OUT" || fail "verify says: $OUT"

# ---- 2. verify checks signed files against their manifest ---------------------------
# The state the first-admission-wins bug left (and what a tampered index
# looks like): the signed file of acme/m@C2 carries the claims, and resident
# chunks, of other bytes. Every chunk still matches its digest.
SF=$(q "SELECT id FROM files WHERE commit_id = '$C2' AND path = 'm-Q4_K_M.gguf'")
HF=$(q "SELECT id FROM files WHERE name = 'free' AND path = 'm-Q4_K_M.gguf'")
OUT=$(mfs pull --endpoint "$HA" other/free:Q4_K_M 2>&1) || fail "pull other/free failed: $OUT"
q "UPDATE files SET (size, sha256, chunk_size, n_chunks) = (SELECT size, sha256, chunk_size,
   n_chunks FROM files WHERE id = $HF) WHERE id = $SF;
   DELETE FROM chunks WHERE file_id = $SF;
   INSERT INTO chunks(file_id, idx, digest) SELECT $SF, idx, digest FROM chunks WHERE file_id = $HF;" ||
	die "cannot change the index"
if OUT=$(mfs verify 2>&1); then
	fail "verify passed a signed file that its manifest does not list: $OUT"
fi
grep -q "acme/m@$C2/m-Q4_K_M.gguf: 'm-Q4_K_M.gguf' does not match the signed manifest" <<<"$OUT" ||
	fail "verify does not name the file: $OUT"
grep -q "0 bad chunk(s), 0 unrepaired, 1 not as signed" <<<"$OUT" || fail "verify says: $OUT"

# ---- 2. a hub-admitted path is not re-bound by a later signed manifest ---------------
STORE=$WORK/store2
mfs trust hub >/dev/null 2>&1 || die "trust hub failed"
put "$A" acme/late $CL "$WORK/evil"; cp "$WORK/l1/m-Q4_K_M.gguf" "$A/acme/late/$CL/"
refs "$A" acme/late $CL
ok mfs add --endpoint "$HA" acme/late:Q8_0
mfs trust add "$WORK/k.pub" --prefix acme/ >/dev/null 2>&1 || die "trust add failed"
put "$B" acme/late $CL "$WORK/l1"; refs "$B" acme/late $CL
refused "acme/late@$CL/m-Q8_0.gguf' serves .* admitted from hub checksums; key $KEY \(manifest sequence 1\) lists .* for the same path" \
	mfs add --endpoint "$HB" --sidecar m-Q8_0.gguf acme/late:Q4_K_M
refused "installed from hub checksums.*same commit from key $KEY" \
	mfs add --endpoint "$HB" acme/late:Q8_0
[ "$(q "SELECT count(*) FROM artifacts WHERE trust != 'hub'")" = 0 ] ||
	fail "an artifact of acme/late is shown as signed"
[ "$(q "SELECT count(*) FROM files WHERE path = 'm-Q4_K_M.gguf'")" = 0 ] ||
	fail "a refused admission left file rows"

finish

#!/usr/bin/env bash
# modelfs add/pull against the test hub over HTTP: revisions of every form,
# selectors, split sets, signed and hub-checksum repositories, the token's
# reach, fault switches, and refusals that admit nothing.
set -euo pipefail
: "${MODELFS:?} ${MFS_GEN:?} ${MFS_SOURCE_DIR:?}"
command -v python3 >/dev/null || { echo "skip: python3 is needed for the test hub"; exit 77; }
work=$(mktemp -d)
hub_pid=
cleanup() { [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$work"

C1=1111111111111111111111111111111111111111
C2=2222222222222222222222222222222222222222
C3=3333333333333333333333333333333333333333
mkdir -p root/hf/tiny/$C1 root/acme/signed/$C2 root/hf/gated/$C3
"$MFS_GEN" gguf root/hf/tiny/$C1/tiny-Q4_K_M.gguf --tensors 6 --tensor-bytes 1500000 --seed 1 >/dev/null
"$MFS_GEN" gguf root/hf/tiny/$C1/tiny-Q8_0.gguf --tensors 6 --tensor-bytes 1000000 --seed 2 >/dev/null
mkdir -p root/hf/tiny/$C1/UD-IQ2_M
"$MFS_GEN" gguf root/hf/tiny/$C1/UD-IQ2_M/tiny-UD-IQ2_M --split 3 --tensors 6 --tensor-bytes 500000 --seed 3 >/dev/null
echo "# tiny" > root/hf/tiny/$C1/README.md
cat > root/hf/tiny/refs.json <<JSON
{"branches": {"main": "$C1"}, "tags": {"v1": "$C1"}, "pulls": {"1": "$C1"}}
JSON
"$MFS_GEN" gguf root/acme/signed/$C2/model-Q4_K_M.gguf --tensors 6 --tensor-bytes 2000000 --seed 4 >/dev/null
"$MODELFS" keygen pub >/dev/null
"$MODELFS" publish --key pub.key --repo acme/signed --chunk-size 1048576 root/acme/signed/$C2 >/dev/null
echo "{\"branches\": {\"main\": \"$C2\"}}" > root/acme/signed/refs.json
"$MFS_GEN" gguf root/hf/gated/$C3/g-Q4_K_M.gguf --tensors 2 --tensor-bytes 100000 --seed 5 >/dev/null
echo "{\"branches\": {\"main\": \"$C3\"}}" > root/hf/gated/refs.json
touch root/hf/gated/gated

python3 "$MFS_SOURCE_DIR/tests/hub/testhub.py" root --token s3cret --page-size 2 \
	--ready ready --lifetime 300 >hub.log 2>&1 &
hub_pid=$!
for _ in $(seq 100); do [ -s ready ] && break; sleep 0.1; done
[ -s ready ] || fail "test hub did not start: $(cat hub.log)"
read -r _ HP CP _ < ready
EP=http://127.0.0.1:$HP
stats() { curl -s "$EP/_control/stats"; }
fault() { curl -s -X POST "$EP/_control/fault?name=$1&path=$2&count=${3:-1}" >/dev/null; }
reset() { curl -s -X POST "$EP/_control/reset" >/dev/null; }
export MODELFS_STORE=$work/store
mfs() { "$MODELFS" "$@"; }
count() { mfs ls --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
expect_fail() { # expect_fail REGEX CMD...
	local re=$1; shift
	if "$@" >out 2>err; then fail "'$*' succeeded; expected an error matching '$re'"; fi
	grep -Eqi "$re" err || fail "'$*': error '$(cat err)' does not match '$re'"
}

# No root of trust yet: refused, with the way out named.
expect_fail "trust hub --prefix" mfs add --endpoint "$EP" hf/tiny:Q4_K_M
[ "$(count)" = 0 ] || fail "something was admitted without a root of trust"

mfs trust hub --prefix hf/ >/dev/null
mfs trust add pub.pub --prefix acme/ >/dev/null

# Every revision form resolves to the same commit.
for rev in main v1 $C1 ${C1:0:7} refs/pr/1; do
	out=$(mfs add --endpoint "$EP" "hf/tiny@$rev:Q4_K_M")
	[ "$out" = "hf/tiny@$C1/tiny-Q4_K_M.gguf" ] || fail "@$rev gave '$out'"
done
# The URL form, and the selector choosing another quantization.
out=$(mfs add --endpoint "$EP" "https://huggingface.co/hf/tiny/tree/v1" 2>&1 || true)
echo "$out" | grep -q "hf/tiny@$C1/" || fail "URL ref: $out"
out=$(mfs pull --endpoint "$EP" hf/tiny:Q8_0)
[ "$out" = "hf/tiny@$C1/tiny-Q8_0.gguf" ] || fail "selector Q8_0 gave '$out'"

# A split set: every shard, verified, beside the first.
out=$(mfs pull --endpoint "$EP" hf/tiny:UD-IQ2_M)
[ "$out" = "hf/tiny@$C1/UD-IQ2_M/tiny-UD-IQ2_M-00001-of-00003.gguf" ] || fail "split gave '$out'"
mfs ls --json | python3 -c '
import json, sys
arts = {a["canonical_ref"]: a for a in json.load(sys.stdin)}
a = [v for k, v in arts.items() if "UD-IQ2_M" in k][0]
paths = [f["path"] for f in a["files"]]
assert len(paths) == 3, paths
assert all(f["resident_bytes"] == f["size"] and f["verified"] for f in a["files"]), a["files"]
assert a["trust"] == "hub", a["trust"]
'
# Bytes in the cache are the hub's bytes.
for f in tiny-Q8_0.gguf UD-IQ2_M/tiny-UD-IQ2_M-00002-of-00003.gguf; do
	want=$(sha256sum "root/hf/tiny/$C1/$f" | cut -d' ' -f1)
	python3 - "$MODELFS_STORE" "$f" "$want" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1] + "/index.db")
(sha,) = db.execute("SELECT sha256 FROM files WHERE path = ?", (sys.argv[2],)).fetchone()
assert sha == sys.argv[3], (sha, sys.argv[3])
PY
done

# A signed repository over HTTP: chunk-verified, trust = the key id.
out=$(mfs pull --endpoint "$EP" acme/signed)
[ "$out" = "acme/signed@$C2/model-Q4_K_M.gguf" ] || fail "signed gave '$out'"
mfs ls --json | python3 -c '
import json, sys
a = [a for a in json.load(sys.stdin) if a["canonical_ref"].startswith("acme/signed@")][0]
assert a["trust"] != "hub" and len(a["trust"]) == 16, a["trust"]
assert a["resident_bytes"] == a["size"], a
'
mfs verify >/dev/null

# Token: the gated repo needs it; it reaches the hub and never the CDN.
expect_fail "gated|token" env -u HF_TOKEN "$MODELFS" add --endpoint "$EP" hf/gated
reset
HF_TOKEN=s3cret mfs pull --endpoint "$EP" hf/gated >/dev/null
stats | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["hub_tokens"] > 0, s
assert s["cdn_tokens"] == 0, "the CDN saw a token: %r" % s
'

# Faults that retries overcome end verified.
for f in cut full200 503 429 badrange; do
	mfs rm "hf/tiny:Q4_K_M" >/dev/null 2>&1 || rm -rf "$MODELFS_STORE"
	[ -d "$MODELFS_STORE" ] || { mfs trust hub --prefix hf/ >/dev/null; mfs trust add pub.pub --prefix acme/ >/dev/null; }
	rm -rf "$MODELFS_STORE/chunks" "$MODELFS_STORE/index.db"* "$MODELFS_STORE/records" "$MODELFS_STORE/partial"
	reset
	fault "$f" "tiny-Q4_K_M.gguf" 2
	out=$(mfs pull --endpoint "$EP" hf/tiny:Q4_K_M 2>err) || fail "fault $f: pull failed: $(cat err)"
	stats | python3 -c "
import json, sys
s = json.load(sys.stdin)
assert s['faults_fired'].get('$f', 0) >= 1, 'fault $f never fired: %r' % s['faults_fired']
"
	mfs verify >/dev/null || fail "fault $f: verify failed"
done

# Faults that do not go away end in a clear error and nothing admitted.
fresh() { rm -rf "$MODELFS_STORE"; mfs trust hub --prefix hf/ >/dev/null; mfs trust add pub.pub --prefix acme/ >/dev/null; reset; }
fresh; fault corrupt "tiny-Q4_K_M.gguf" 0
expect_fail "hash|sha-?256|match" mfs pull --endpoint "$EP" hf/tiny:Q4_K_M
[ "$(count)" = 0 ] || fail "corrupt bytes: something was admitted"
for chunk in "$MODELFS_STORE"/chunks/*/*; do
	[ -f "$chunk" ] || continue
	[ "$(sha256sum "$chunk" | cut -d' ' -f1)" = "$(basename "$chunk")" ] || fail "bad chunk committed: $chunk"
done
fresh; fault corrupt "model-Q4_K_M.gguf" 0
expect_fail "hash|sha-?256|match|verif" mfs pull --endpoint "$EP" acme/signed
for f in redirect-file redirect-third; do
	fresh; fault "$f" "tiny-Q4_K_M.gguf" 0
	expect_fail "redirect|refus|host|scheme" mfs pull --endpoint "$EP" hf/tiny:Q4_K_M
	[ "$(count)" = 0 ] || fail "$f: something was admitted"
done
fresh
expect_fail "not found|RepoNotFound" mfs add --endpoint "$EP" hf/nope
expect_fail "revision|not found" mfs add --endpoint "$EP" hf/tiny@nobranch
expect_fail "no model artifact matching selector" mfs add --endpoint "$EP" hf/tiny:Q5_K_S
[ "$(count)" = 0 ] || fail "a failed add admitted something"
echo "hub cli: all checks passed"

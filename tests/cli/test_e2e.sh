#!/bin/bash
# test_e2e.sh - the whole path for a local repository, with the real binary:
# keygen, publish, trust add, add (only the header chunks become resident),
# pull (everything resident), verify, and the inventory read back as JSON
# (canonical_ref, distribution_id, identity, sizes, trust, whole-file SHA-256
# checked against sha256sum of the original). Also a two-shard split GGUF, a
# safetensors file, and a selector picking one of two quantizations.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

keygen
COMMIT_RE='^[0-9a-f]{40}$'

# revision of a local repository: first 40 hex of the SHA-256 of its manifest
local_commit() { sha256 "$REPO/$1/.modelfs/manifest.json" | cut -c1-40; }

# ---- one GGUF, several 4 MiB chunks -------------------------------------------
mkdir -p "$REPO/acme/tiny"
"$MFS_GEN" gguf "$REPO/acme/tiny/tiny-Q4_K_M.gguf" --tensors 8 --tensor-bytes 2000000 >/dev/null
publish acme/tiny
C1=$(local_commit acme/tiny)
SIZE1=$(stat -c %s "$REPO/acme/tiny/tiny-Q4_K_M.gguf")
[ "$SIZE1" -gt $((8 << 20)) ] || die "the test model is too small ($SIZE1) to span chunks"

# Nothing trusted yet: refused.
expect_fail mfs add --endpoint "$ENDPOINT" acme/tiny --msg "trust|not trusted|untrusted"
assert_nothing_admitted "add before trust"

expect_ok mfs trust add "$WORK/k.pub" --prefix acme/
grep -q "$KEY_ID" <<<"$OUT" || fail "trust add does not name key $KEY_ID: $OUT"

expect_ok mfs add --endpoint "$ENDPOINT" acme/tiny
[ "$OUT" = "acme/tiny@$C1/tiny-Q4_K_M.gguf" ] ||
	fail "add printed '$OUT', expected acme/tiny@$C1/tiny-Q4_K_M.gguf"

ls_json
python3 - "$WORK/ls.json" "$C1" "$SIZE1" "$KEY_ID" "$ENDPOINT" <<'EOF' || fail "ls --json after add: $(cat "$WORK/ls.json")"
import json, re, sys
a = json.load(open(sys.argv[1]))
c1, size, key, ep = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
assert len(a) == 1, a
x = a[0]
assert x["canonical_ref"] == f"acme/tiny@{c1}/tiny-Q4_K_M.gguf", x["canonical_ref"]
assert x["distribution_id"] == "tiny-Q4_K_M", x["distribution_id"]
assert re.fullmatch(r"[0-9a-f]{64}", x["identity"]), x["identity"]
assert x["format"] == "gguf", x["format"]
assert x["trust"] == key, (x["trust"], key)
assert x["commit"] == c1 and x["endpoint"] == ep, x
assert x["size"] == size, (x["size"], size)
# after add only the header chunks are resident
assert 0 < x["resident_bytes"] < size, (x["resident_bytes"], size)
assert x["state"] == "installed", x["state"]
assert [f["path"] for f in x["files"]] == ["tiny-Q4_K_M.gguf"], x["files"]
assert x["files"][0]["size"] == size
assert x["metadata"]["architecture"] == "llama", x["metadata"]
assert x["metadata"]["tensor_count"] == 8, x["metadata"]
EOF
assert_chunks_consistent "after add"
ID_AFTER_ADD=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["identity"])' "$WORK/ls.json")

# Adding again is idempotent: still one artifact, same ref.
expect_ok mfs add --endpoint "$ENDPOINT" acme/tiny
[ "$OUT" = "acme/tiny@$C1/tiny-Q4_K_M.gguf" ] || fail "second add printed '$OUT'"

expect_ok mfs pull --endpoint "$ENDPOINT" acme/tiny
[ "$OUT" = "acme/tiny@$C1/tiny-Q4_K_M.gguf" ] || fail "pull printed '$OUT'"
ORIG_SHA=$(sha256 "$REPO/acme/tiny/tiny-Q4_K_M.gguf")

ls_json
python3 - "$WORK/ls.json" "$SIZE1" "$ID_AFTER_ADD" <<'EOF' || fail "ls --json after pull: $(cat "$WORK/ls.json")"
import json, sys
a = json.load(open(sys.argv[1]))
size = int(sys.argv[2])
assert len(a) == 1, a
x = a[0]
assert x["resident_bytes"] == size == x["size"], (x["resident_bytes"], size)
assert x["files"][0]["resident_bytes"] == size, x["files"]
assert x["files"][0]["verified"] is True, x["files"]
assert x["state"] == "resident", x["state"]
assert x["identity"] == sys.argv[3], "identity changed between add and pull"
EOF

# The whole-file digest the inventory reports is the original file's.
python3 - "$WORK/ls.json" "$ORIG_SHA" <<'EOF' || fail "ls --json files[] does not report the whole-file sha256 $ORIG_SHA: $(cat "$WORK/ls.json")"
import json, sys
f = json.load(open(sys.argv[1]))[0]["files"][0]
assert f.get("sha256") == sys.argv[2], f
EOF
# ... and so is the one kept in the artifact's record.
grep -rqF "\"$ORIG_SHA\"" "$STORE/records" || fail "no record in records/ holds the sha256 $ORIG_SHA"

# The cached chunks reassemble the original file exactly.
python3 - "$STORE" "$REPO/acme/tiny/.modelfs/manifest.json" "$REPO/acme/tiny/tiny-Q4_K_M.gguf" <<'EOF' || fail "the cached chunks do not reassemble the original file"
import hashlib, json, os, sys
store, man, orig = sys.argv[1:]
m = json.load(open(man))
f = m["files"][0]
h = hashlib.sha256()
for c in f["chunks"]:
    h.update(open(os.path.join(store, "chunks", c[:2], c), "rb").read())
assert h.hexdigest() == hashlib.sha256(open(orig, "rb").read()).hexdigest()
EOF

expect_ok mfs verify
grep -qE "verified 1 file\(s\).* 0 bad chunk\(s\), 0 unrepaired" <<<"$OUT" || fail "verify said: $OUT"
expect_ok mfs status --json
python3 -c '
import json, sys
s = json.loads(sys.argv[1])
assert s["artifacts"] == 1, s
assert s["usage_bytes"] == int(sys.argv[2]), s
assert s["counters"]["fetched_bytes"] >= int(sys.argv[2]), s
' "$OUT" "$SIZE1" || fail "status --json after pull: $OUT"
expect_ok mfs inspect acme/tiny
grep -qE "^architecture +llama" <<<"$OUT" || fail "inspect lacks the architecture: $OUT"
grep -qE "^canonical_ref +acme/tiny@$C1/tiny-Q4_K_M.gguf" <<<"$OUT" || fail "inspect lacks canonical_ref: $OUT"
assert_chunks_consistent "after pull"

# ---- a two-shard split GGUF -----------------------------------------------------
mkdir -p "$REPO/acme/split"
"$MFS_GEN" gguf "$REPO/acme/split/big-Q8_0.gguf" --tensors 6 --tensor-bytes 1500000 --split 2 >/dev/null
SHARDS=$(cd "$REPO/acme/split" && ls -- *.gguf)
[ "$(wc -l <<<"$SHARDS")" -eq 2 ] || die "mfs-gen --split 2 made: $SHARDS"
publish acme/split
C2=$(local_commit acme/split)
expect_ok mfs pull --endpoint "$ENDPOINT" acme/split
[ "$OUT" = "acme/split@$C2/big-Q8_0-00001-of-00002.gguf" ] || fail "split pull printed '$OUT'"
ls_json
python3 - "$WORK/ls.json" "$C2" "$REPO/acme/split" <<'EOF' || fail "split GGUF in ls --json: $(cat "$WORK/ls.json")"
import json, os, sys
a = json.load(open(sys.argv[1]))
x = [x for x in a if x["canonical_ref"].startswith("acme/split@")]
assert len(x) == 1, a
x = x[0]
d = sys.argv[3]
want = ["big-Q8_0-00001-of-00002.gguf", "big-Q8_0-00002-of-00002.gguf"]
assert [f["path"] for f in x["files"]] == want, x["files"]
total = 0
for f in x["files"]:
    sz = os.path.getsize(os.path.join(d, f["path"]))
    assert f["size"] == sz and f["resident_bytes"] == sz, f
    total += sz
assert x["size"] == total and x["resident_bytes"] == total, x
assert x["distribution_id"] == "big-Q8_0", x["distribution_id"]
assert x["format"] == "gguf"
EOF

# ---- safetensors ------------------------------------------------------------------
mkdir -p "$REPO/acme/st"
"$MFS_GEN" safetensors "$REPO/acme/st/model.safetensors" --tensors 4 --tensor-bytes 300000 >/dev/null
publish acme/st
C3=$(local_commit acme/st)
expect_ok mfs pull --endpoint "$ENDPOINT" acme/st
[ "$OUT" = "acme/st@$C3/model.safetensors" ] || fail "safetensors pull printed '$OUT'"
ls_json
SIZE3=$(stat -c %s "$REPO/acme/st/model.safetensors")
json_check "[(x['format'], x['distribution_id'], x['size'], x['resident_bytes']) for x in a if x['canonical_ref'] == 'acme/st@$C3/model.safetensors'] == [('safetensors', 'model', $SIZE3, $SIZE3)]" \
	"safetensors artifact in ls --json"

# ---- two quantizations: the selector picks one ------------------------------------
mkdir -p "$REPO/acme/quants"
"$MFS_GEN" gguf "$REPO/acme/quants/q-Q4_K_M.gguf" --tensors 4 --tensor-bytes 100000 --seed 3 >/dev/null
"$MFS_GEN" gguf "$REPO/acme/quants/q-Q8_0.gguf" --tensors 4 --tensor-bytes 200000 --seed 4 >/dev/null
publish acme/quants
C4=$(local_commit acme/quants)
expect_ok mfs add --endpoint "$ENDPOINT" acme/quants:Q8_0
[ "$OUT" = "acme/quants@$C4/q-Q8_0.gguf" ] || fail "selector Q8_0 gave '$OUT'"
expect_ok mfs add --endpoint "$ENDPOINT" acme/quants:Q4_K_M
[ "$OUT" = "acme/quants@$C4/q-Q4_K_M.gguf" ] || fail "selector Q4_K_M gave '$OUT'"
expect_ok mfs add --endpoint "$ENDPOINT" "acme/quants@$C4:Q4_K_M"
[ "$OUT" = "acme/quants@$C4/q-Q4_K_M.gguf" ] || fail "explicit commit plus selector gave '$OUT'"
expect_fail mfs add --endpoint "$ENDPOINT" acme/quants:Q2_K --msg "Q2_K|no .*match|not found|no model"
ls_json
json_check "sorted(x['canonical_ref'] for x in a if x['canonical_ref'].startswith('acme/quants@')) == ['acme/quants@$C4/q-Q4_K_M.gguf', 'acme/quants@$C4/q-Q8_0.gguf']" \
	"two quantizations, two artifacts"
json_check "len(set(x['identity'] for x in a)) == len(a) == 5" "five artifacts with distinct identities"

expect_ok mfs verify
grep -qE "0 bad chunk\(s\), 0 unrepaired" <<<"$OUT" || fail "final verify said: $OUT"
assert_chunks_consistent "at the end"

finish

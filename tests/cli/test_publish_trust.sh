#!/bin/bash
# test_publish_trust.sh - the publisher and trust-policy commands, end to end:
# keygen (modes, no overwrite), publish (manifest contents checked against
# digests computed independently here, signature checked with the openssl
# command when present, sequence numbering), trust add/hub/ls/rm with the
# policy read back as JSON, and each bad input with its message and exit code.
set -u

: "${MODELFS:?MODELFS must name the modelfs binary}"
command -v python3 >/dev/null || { echo "skip: python3 is needed"; exit 77; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mfs-cli-trust.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
STORE="$WORK/store"
FAILS=0

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

# run CODE NEEDLE CMD...: expects exit CODE and NEEDLE in stdout+stderr.
run() {
	local code=$1 needle=$2
	shift 2
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" -ne "$code" ]; then
		fail "'$*' exited $rc, expected $code; output: $out"
	elif [ -n "$needle" ] && ! grep -qF -- "$needle" <<<"$out"; then
		fail "'$*' output lacks '$needle': $out"
	fi
}

mfs() { "$MODELFS" --store "$STORE" "$@"; }

# ---- keygen -----------------------------------------------------------------
run 0 "key id:" mfs keygen pub1
[ "$(stat -c %a pub1.key)" = 600 ] || fail "pub1.key mode is $(stat -c %a pub1.key)"
[ "$(stat -c %a pub1.pub)" = 644 ] || fail "pub1.pub mode is $(stat -c %a pub1.pub)"
grep -q "BEGIN PRIVATE KEY" pub1.key || fail "pub1.key is not a PEM private key"
grep -q "BEGIN PUBLIC KEY" pub1.pub || fail "pub1.pub is not a PEM public key"
KEY1=$(mfs keygen pub2 | sed -n 's/^key id: //p')
[ ${#KEY1} -eq 16 ] || fail "key id '$KEY1' is not 16 hex digits"
cp pub1.key pub1.key.orig
run 1 "already exists" mfs keygen pub1
cmp -s pub1.key pub1.key.orig || fail "keygen overwrote pub1.key"
run 2 "missing OUT" mfs keygen
run 0 "usage: modelfs keygen" mfs keygen --help
ID1=$(python3 - pub1.pub <<'EOF'
import base64, hashlib, sys
b64 = "".join(l.strip() for l in open(sys.argv[1]) if not l.startswith("-----"))
der = base64.b64decode(b64)
print(hashlib.sha256(der[-32:]).hexdigest()[:16])  # raw key is the DER tail
EOF
)

# ---- publish ----------------------------------------------------------------
mkdir -p model/sub
head -c 10000 /dev/urandom >model/weights.gguf
head -c 8192 /dev/urandom >model/sub/part.bin
: >model/sub/empty.txt
echo '{"a": 1}' >model/config.json

run 0 "sequence 1: 4 files, key id $ID1" \
	mfs publish --key pub1.key --repo org/model --chunk-size 4K model
[ -f model/.modelfs/manifest.json ] || fail "no manifest.json"
[ -f model/.modelfs/manifest.sig ] || fail "no manifest.sig"
ls model/.modelfs | grep -q tmp && fail "temporary files left in .modelfs"

python3 - model <<'EOF' || fail "manifest contents are wrong"
import hashlib, json, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, ".modelfs/manifest.json")))
assert m["format"] == "modelfs-manifest" and m["version"] == 1, m
assert m["repo"] == "org/model" and m["sequence"] == 1, m
paths = [f["path"] for f in m["files"]]
assert paths == sorted(paths) == ["config.json", "sub/empty.txt", "sub/part.bin",
                                  "weights.gguf"], paths
for f in m["files"]:
    data = open(os.path.join(d, f["path"]), "rb").read()
    cs = f["chunk_size"]
    assert cs == 4096 and f["size"] == len(data), f
    assert f["sha256"] == hashlib.sha256(data).hexdigest(), f["path"]
    want = [hashlib.sha256(data[i:i + cs]).hexdigest() for i in range(0, len(data), cs)]
    assert f["chunks"] == want, f["path"]
sig = open(os.path.join(d, ".modelfs/manifest.sig")).read()
assert len(sig) == 129 and sig.endswith("\n") and all(c in "0123456789abcdef" for c in sig[:128])
EOF
grep -q "\"key_id\":\"$ID1\"" model/.modelfs/manifest.json || fail "manifest key_id is not $ID1"

# The signature verifies with an independent Ed25519 implementation.
if command -v openssl >/dev/null; then
	python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(open(sys.argv[1]).read().strip()))' \
		model/.modelfs/manifest.sig >sig.bin
	openssl pkeyutl -verify -pubin -inkey pub1.pub -rawin -in model/.modelfs/manifest.json \
		-sigfile sig.bin >/dev/null 2>&1 || fail "openssl does not verify the signature"
	openssl pkeyutl -verify -pubin -inkey pub2.pub -rawin -in model/.modelfs/manifest.json \
		-sigfile sig.bin >/dev/null 2>&1 && fail "the signature verifies with another key"
fi

run 0 "sequence 2" mfs publish --key pub1.key --repo org/model model
run 0 "sequence 10" mfs publish --key pub1.key --repo org/model --sequence 10 model
run 0 "sequence 11" mfs publish --key pub1.key --repo org/model model
run 0 "not above" mfs publish --key pub1.key --repo org/model --sequence 3 model
grep -q '"chunk_size":4194304' model/.modelfs/manifest.json || fail "default chunk size is not 4 MiB"

run 2 "missing --key" mfs publish --repo org/model model
run 2 "missing --repo" mfs publish --key pub1.key model
run 2 "bad --repo 'nope'" mfs publish --key pub1.key --repo nope model
run 2 "bad --repo '../x'" mfs publish --key pub1.key --repo ../x model
run 2 "bad --chunk-size '5000'" mfs publish --key pub1.key --repo o/m --chunk-size 5000 model
run 2 "bad --chunk-size '2G'" mfs publish --key pub1.key --repo o/m --chunk-size 2G model
run 2 "bad --sequence '0'" mfs publish --key pub1.key --repo o/m --sequence 0 model
run 2 "bad --sequence '-1'" mfs publish --key pub1.key --repo o/m --sequence -1 model
run 2 "missing DIR" mfs publish --key pub1.key --repo o/m
run 1 "No such file" mfs publish --key pub1.key --repo o/m missing-dir
run 1 "not a directory" mfs publish --key pub1.key --repo o/m model/config.json
run 1 "is a public key" mfs publish --key pub1.pub --repo o/m model
run 1 "No such file" mfs publish --key nokey.key --repo o/m model
mkdir empty
run 1 "no files to publish" mfs publish --key pub1.key --repo o/m empty
ln -s weights.gguf model/alias.gguf
cp model/.modelfs/manifest.json before.json
run 1 "symbolic link" mfs publish --key pub1.key --repo org/model model
cmp -s before.json model/.modelfs/manifest.json || fail "a failed publish changed the manifest"
rm model/alias.gguf
run 0 "usage: modelfs publish" mfs publish --help

# ---- trust ------------------------------------------------------------------
[ -e "$STORE" ] && fail "the store was created by keygen or publish"
run 0 "trusted for every repo" mfs trust add pub2.pub
run 0 "trusted key $ID1 for org/" mfs trust add pub1.pub --prefix org/
run 0 "trusted key $ID1 for lab" mfs trust add pub1.pub --prefix lab
run 0 "" mfs trust add pub1.pub --prefix org/   # idempotent
run 0 "hub checksums accepted for mirror/" mfs trust hub --prefix mirror/
run 0 "every repo" mfs trust hub
[ "$(stat -c %a "$STORE/policy.json")" = 644 ] || fail "policy.json mode"

mfs trust ls --json >ls.json || fail "trust ls --json failed"
python3 - ls.json "$ID1" "$KEY1" <<'EOF' || fail "trust ls --json is wrong: $(cat ls.json)"
import json, sys
p = json.load(open(sys.argv[1]))
keys = sorted((k["key_id"], k["prefix"]) for k in p["keys"])
want = sorted([(sys.argv[3], ""), (sys.argv[2], "org/"), (sys.argv[2], "lab")])
assert keys == want, keys
assert all("BEGIN PUBLIC KEY" in k["public_key"] and k["added"].endswith("Z") for k in p["keys"])
assert sorted(h["prefix"] for h in p["hub"]) == ["", "mirror/"], p["hub"]
EOF
run 0 "$ID1" mfs trust ls

run 2 "bad --prefix 'a b/'" mfs trust add pub1.pub --prefix "a b/"
run 2 "bad --prefix '../'" mfs trust hub --prefix ../
run 2 "needs the publisher's public key" mfs trust add
run 1 "private key" mfs trust add pub1.key --prefix org/
run 1 "No such file" mfs trust add missing.pub --prefix org/
echo "not a key" >junk.pub
run 1 "not an Ed25519 public key" mfs trust add junk.pub --prefix org/
run 2 "unknown action 'grant'" mfs trust grant
run 2 "missing action" mfs trust
run 2 "takes no --json" mfs trust add pub1.pub --json
run 0 "usage: modelfs trust" mfs trust --help
run 0 "usage: modelfs trust" mfs trust ls --help

run 0 "no longer trusted" mfs trust rm "$ID1"
run 1 "not in the trust policy" mfs trust rm "$ID1"
run 0 "no longer accepted for mirror/" mfs trust rm --hub mirror/
run 1 "not in the trust policy" mfs trust rm --hub mirror/
mfs trust ls --json | python3 -c '
import json, sys
p = json.load(sys.stdin)
assert [k["prefix"] for k in p["keys"]] == [""], p
assert [h["prefix"] for h in p["hub"]] == [""], p
' || fail "trust rm did not remove exactly the entries asked for"

# A damaged policy file is reported, not ignored.
echo '{"version":1,"keys":[' >"$STORE/policy.json"
run 1 "fix or remove it" mfs trust ls

# An empty store: nothing trusted, said plainly.
run 0 "every repo is refused" "$MODELFS" --store "$WORK/store2" trust ls
"$MODELFS" --store "$WORK/store2" trust ls --json | python3 -c '
import json, sys
p = json.load(sys.stdin)
assert p == {"keys": [], "hub": []}, p
' || fail "empty trust ls --json"

if [ "$FAILS" -ne 0 ]; then
	echo "$FAILS check(s) failed" >&2
	exit 1
fi
echo "ok"

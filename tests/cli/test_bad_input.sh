#!/bin/bash
# test_bad_input.sh - every hostile or broken input is refused by the real
# binary with a non-zero exit, a message that says what is wrong, and nothing
# admitted: missing, damaged and foreign signatures, untrusted keys, keys
# trusted elsewhere, a manifest of another repo, rollback of a moving ref,
# model bytes that do not match the manifest (in the header at add, in a later
# chunk at pull, where the bad chunk must never become resident), hostile
# GGUF/safetensors headers, a split set missing a shard, unsafe paths in a
# correctly signed manifest, bad model refs and an unknown endpoint scheme.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

keygen
mfs keygen "$WORK/k2" >/dev/null
expect_ok mfs trust add "$WORK/k.pub" --prefix acme/ || die "trust add failed"

# gguf_repo ORG/NAME: a repo with one 16 MiB GGUF (four 4 MiB chunks)
gguf_repo() {
	mkdir -p "$REPO/$1"
	"$MFS_GEN" gguf "$REPO/$1/m-Q4_K_M.gguf" --tensors 8 --tensor-bytes 2000000 >/dev/null
}

add() { mfs add --endpoint "$ENDPOINT" "$@"; }
pull() { mfs pull --endpoint "$ENDPOINT" "$@"; }

# sign_raw KEY DIR: signs DIR/.modelfs/manifest.json as it is, with openssl
sign_raw() {
	openssl pkeyutl -sign -rawin -inkey "$1" -in "$2/.modelfs/manifest.json" -out "$WORK/sig.bin" ||
		die "openssl cannot sign with $1"
	python3 -c 'import sys; print(open(sys.argv[1], "rb").read().hex())' "$WORK/sig.bin" \
		>"$2/.modelfs/manifest.sig"
	[ "$(wc -c <"$2/.modelfs/manifest.sig")" -eq 129 ] || die "bad signature file"
}

# ---- roots of trust ---------------------------------------------------------
gguf_repo acme/unsigned
publish acme/unsigned
rm "$REPO/acme/unsigned/.modelfs/manifest.sig"
expect_fail add acme/unsigned --msg "unsigned|no .*manifest\.sig"
assert_nothing_admitted "unsigned manifest"

gguf_repo acme/flipped
publish acme/flipped
# change one byte of the signed text (the sequence number 1 -> 7)
sed -i 's/"sequence":1/"sequence":7/' "$REPO/acme/flipped/.modelfs/manifest.json"
grep -q '"sequence":7' "$REPO/acme/flipped/.modelfs/manifest.json" || die "could not alter the manifest"
expect_fail add acme/flipped --msg "signature.*(does not verify|invalid|bad)"
assert_nothing_admitted "manifest altered after signing"

gguf_repo acme/badsig
publish acme/badsig
sign_raw "$WORK/k2.key" "$REPO/acme/badsig"   # right bytes, another key's signature
expect_fail add acme/badsig --msg "signature.*(does not verify|invalid|bad)"
assert_nothing_admitted "manifest signed by another key than it names"

echo "00${RANDOM}" >"$REPO/acme/badsig/.modelfs/manifest.sig"
expect_fail add acme/badsig --msg "signature is malformed"
assert_nothing_admitted "malformed signature file"

gguf_repo acme/stranger
mfs publish --key "$WORK/k2.key" --repo acme/stranger "$REPO/acme/stranger" >/dev/null
expect_fail add acme/stranger --msg "not trusted"
assert_nothing_admitted "untrusted key"

gguf_repo other/thing
publish other/thing
expect_fail add other/thing --msg "trusted only for 'acme/'.*not for 'other/thing'"
assert_nothing_admitted "key trusted for another prefix"

gguf_repo acme/tiny
mfs publish --key "$WORK/k.key" --repo acme/other "$REPO/acme/tiny" >/dev/null
expect_fail add acme/tiny --msg "another repo.*acme/other"
assert_nothing_admitted "manifest of another repo"

# ---- bytes that do not match the signed manifest ------------------------------
gguf_repo acme/hdr
publish acme/hdr
# flip a byte inside the header region (first chunk), size unchanged
printf '\x5a' | dd of="$REPO/acme/hdr/m-Q4_K_M.gguf" bs=1 seek=200 conv=notrunc status=none
expect_fail add acme/hdr --msg "(do|does) not match (their|its) SHA-256"
assert_nothing_admitted "header bytes changed after publishing (add)"
expect_fail pull acme/hdr --msg "(do|does) not match (their|its) SHA-256"
assert_nothing_admitted "header bytes changed after publishing (pull)"
assert_chunks_consistent "after a bad header"

gguf_repo acme/sizechg
publish acme/sizechg
head -c 1 /dev/zero >>"$REPO/acme/sizechg/m-Q4_K_M.gguf"
expect_fail add acme/sizechg --msg "16006145 bytes in the repository but 16006144 in the signed manifest"
assert_nothing_admitted "file grew after publishing"

# ---- hostile headers, published properly (the signature is fine) --------------
KINDS=$("$MFS_GEN" bad --list)
for want in gguf-truncated-header gguf-oversized-string gguf-tensor-past-eof \
	st-truncated-header st-oversized-header st-tensor-past-eof; do
	grep -qx "$want" <<<"$KINDS" || fail "mfs-gen bad has no kind $want"
done
for kind in $KINDS; do
	name=bad-$(tr '_' '-' <<<"$kind")
	mkdir -p "$REPO/acme/$name"
	case $kind in
	gguf-*) file=model-Q4_K_M.gguf; fmt=GGUF ;;
	st-*) file=model.safetensors; fmt=safetensors ;;
	*) fail "unknown kind $kind"; continue ;;
	esac
	"$MFS_GEN" bad "$kind" "$REPO/acme/$name/$file" >/dev/null || { fail "mfs-gen bad $kind"; continue; }
	publish "acme/$name"
	expect_fail add "acme/$name" --msg "not a valid $fmt file"
	assert_nothing_admitted "hostile header $kind"
done

# ---- a split set missing a shard ----------------------------------------------
mkdir -p "$REPO/acme/split"
"$MFS_GEN" gguf "$REPO/acme/split/s-Q4_K_M.gguf" --tensors 6 --tensor-bytes 10000 --split 3 >/dev/null
rm "$REPO/acme/split/s-Q4_K_M-00002-of-00003.gguf" || die "no shard 2 to delete"
publish acme/split
expect_fail add acme/split --msg "missing shard .*00002-of-00003"
assert_nothing_admitted "split set missing shard 2"

# A split set whose shard 2 carries another set's header (split.count 2, not 3).
mkdir -p "$REPO/acme/split2" "$WORK/other"
"$MFS_GEN" gguf "$REPO/acme/split2/s-Q4_K_M.gguf" --tensors 6 --tensor-bytes 10000 --split 3 >/dev/null
"$MFS_GEN" gguf "$WORK/other/s.gguf" --tensors 6 --tensor-bytes 10000 --split 2 >/dev/null
cp "$WORK/other/s-00002-of-00002.gguf" "$REPO/acme/split2/s-Q4_K_M-00002-of-00003.gguf"
publish acme/split2
expect_fail add acme/split2 --msg "split.count 2, expected 3"
assert_nothing_admitted "split set with a foreign shard"

# ---- unsafe paths in a correctly signed manifest --------------------------------
if command -v openssl >/dev/null && openssl pkeyutl -help 2>&1 | grep -q rawin; then
	n=0
	for bad in "../x.gguf" "/abs/x.gguf" "sub/../../x.gguf" 'a\u0000b.gguf' "./x.gguf" "a//b.gguf"; do
		n=$((n + 1))
		gguf_repo "acme/path$n"
		publish "acme/path$n"
		python3 - "$REPO/acme/path$n/.modelfs/manifest.json" "$bad" <<'EOF' || die "cannot rewrite the manifest"
import json, sys
p, bad = sys.argv[1], sys.argv[2]
m = json.load(open(p))
bad = json.loads('"' + bad + '"')      # lets the list spell a NUL as \u0000
m["files"][0]["path"] = bad
m["files"].sort(key=lambda f: f["path"].encode())
open(p, "w").write(json.dumps(m, separators=(",", ":")))
EOF
		sign_raw "$WORK/k.key" "$REPO/acme/path$n"
		# the openssl signature is accepted when nothing else is wrong:
		# shown by the control case below
		expect_fail add "acme/path$n" --msg "unsafe path|NUL byte"
		assert_nothing_admitted "unsafe path '$bad'"
	done
	# Control: the same rewrite with a harmless rename is admitted, so the
	# refusals above are about the paths and not about the re-signing.
	gguf_repo acme/pathok
	publish acme/pathok
	python3 - "$REPO/acme/pathok/.modelfs/manifest.json" <<'EOF'
import json, sys
p = sys.argv[1]
m = json.load(open(p))
m["sequence"] = 2
open(p, "w").write(json.dumps(m, separators=(",", ":")))
EOF
	sign_raw "$WORK/k.key" "$REPO/acme/pathok"
	CTRL_STORE="$WORK/store-ctrl"
	mfs --store "$CTRL_STORE" trust add "$WORK/k.pub" --prefix acme/ >/dev/null
	expect_ok mfs --store "$CTRL_STORE" add --endpoint "$ENDPOINT" acme/pathok ||
		fail "a manifest re-signed with openssl is refused, so the unsafe-path cases prove nothing"
else
	echo "note: openssl without pkeyutl -rawin; unsafe-path cases skipped"
fi

# ---- bad refs and endpoints ----------------------------------------------------
expect_fail add "org/" --msg "invalid model ref.*empty repository"
expect_fail add "repo-only" --msg "invalid model ref.*no '/'"
expect_fail add "" --msg "invalid model ref|expected"
expect_fail add "a/b/c/d" --msg "invalid model ref"
expect_fail add "../acme/tiny" --msg "invalid model ref"
expect_fail mfs add --endpoint "gopher://example.org" acme/tiny --msg "unknown repository 'gopher://"
expect_fail mfs add --endpoint "file://$WORK/nowhere" acme/tiny --msg "not found|no such|no directory"
expect_fail add acme/missing --msg "not found"
expect_fail mfs add --msg "expected one model ref"
assert_nothing_admitted "bad refs"

# ---- rollback of a moving ref ------------------------------------------------------
# (own store: something is admitted here on purpose)
export MODELFS_STORE="$WORK/store-rb"
STORE=$MODELFS_STORE
mfs trust add "$WORK/k.pub" --prefix acme/ >/dev/null
gguf_repo acme/rb
publish acme/rb --sequence 5
C5=$(sha256 "$REPO/acme/rb/.modelfs/manifest.json" | cut -c1-40)
expect_ok add acme/rb
[ "$OUT" = "acme/rb@$C5/m-Q4_K_M.gguf" ] || fail "add at sequence 5 printed '$OUT'"
publish acme/rb --sequence 3
C3=$(sha256 "$REPO/acme/rb/.modelfs/manifest.json" | cut -c1-40)
[ "$C3" != "$C5" ] || die "the re-published manifest has the same commit"
expect_fail add acme/rb --msg "rollback.*sequence 5.*sequence 3"
expect_fail add acme/rb@main --msg "rollback"
ls_json
json_check "[x['canonical_ref'] for x in a] == ['acme/rb@$C5/m-Q4_K_M.gguf']" "rollback admitted something"
# by its explicit commit the older manifest may be chosen
expect_ok add "acme/rb@$C3"
[ "$OUT" = "acme/rb@$C3/m-Q4_K_M.gguf" ] || fail "add by commit printed '$OUT'"
# and going forward again is fine
publish acme/rb --sequence 6
expect_ok add acme/rb

# ---- a later chunk that does not match: pull fails, never resident --------------
export MODELFS_STORE="$WORK/store-pull"
STORE=$MODELFS_STORE
mfs trust add "$WORK/k.pub" --prefix acme/ >/dev/null
gguf_repo acme/late
publish acme/late
BADCHUNK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files"][0]["chunks"][2])' \
	"$REPO/acme/late/.modelfs/manifest.json")
# chunk 2 starts at 8 MiB: flip a byte inside it, size unchanged
printf '\xa5' | dd of="$REPO/acme/late/m-Q4_K_M.gguf" bs=1 seek=$((9 << 20)) conv=notrunc status=none
expect_fail pull acme/late --msg "(do|does) not match (their|its) SHA-256"
[ ! -e "$STORE/chunks/${BADCHUNK:0:2}/$BADCHUNK" ] || fail "the chunk that failed to verify has a chunk file"
n=$(sqlite3 "$STORE/index.db" "SELECT count(*) FROM resident WHERE lower(hex(digest)) = '$BADCHUNK'")
[ "$n" = 0 ] || fail "the chunk that failed to verify is resident"
assert_chunks_consistent "after a failed pull"
ls_json
json_check "all(x['resident_bytes'] < x['size'] and x['state'] != 'resident' for x in a)" \
	"an artifact with a bad chunk is reported fully resident"
expect_fail pull acme/late --msg "(do|does) not match (their|its) SHA-256"
assert_chunks_consistent "after a second failed pull"
expect_ok mfs verify
assert_chunks_consistent "after verify"

finish

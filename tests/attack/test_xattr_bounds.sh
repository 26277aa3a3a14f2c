#!/bin/bash
# test_xattr_bounds.sh - issue 9 finding 18, through a real mount: a model
# file whose metadata has thousands of keys (a safetensors __metadata__ map,
# and a GGUF with thousands of key/value pairs) made listxattr fail with
# E2BIG, since the kernel caps a list at 64 KiB (XATTR_LIST_MAX). Now
# `getfattr -d -m user.modelfs` and listxattr succeed on both, the list stays
# under the kernel's limit, the documented attributes are all there, the
# metadata attributes left out are counted in user.modelfs.meta_omitted, and
# every listed attribute can be read.
. "$(dirname "$0")/../mount/lib.sh"
command -v getfattr >/dev/null || skip "getfattr (attr) is needed"

make_repo org/manykeys many-Q4_K_M.gguf --tensors 2 --tensor-bytes 4096 --extra-keys 5000
mkdir -p "$REPO/org/manyst"
"$MFS_GEN" safetensors "$REPO/org/manyst/model.safetensors" --tensors 2 --tensor-bytes 4096 \
	--extra-keys 5000 >/dev/null || die "mfs-gen safetensors failed"
publish_trust org/manykeys
publish_trust org/manyst
G=$(mfs add --endpoint "file://$REPO" org/manykeys 2>&1) || die "add org/manykeys failed: $G"
S=$(mfs add --endpoint "file://$REPO" org/manyst 2>&1) || die "add org/manyst failed: $S"
mount_fg

for ref in "$G" "$S"; do
	f="$MNT/$ref"
	[ -f "$f" ] || die "$f missing"
	getfattr -d -m user.modelfs "$f" >"$WORK/attrs.txt" 2>"$WORK/attrs.err" ||
		fail "getfattr -d on $ref failed: $(cat "$WORK/attrs.err")"
	python3 - "$f" <<'PY' || fail "listxattr on $ref: see above"
import os, sys
f = sys.argv[1]
names = os.listxattr(f)                      # E2BIG before the bound
size = sum(len(n.encode()) + 1 for n in names)
assert size < 65536, f"list of {size} bytes"
for doc in ("canonical_ref", "distribution_id", "identity", "sha256", "source", "commit",
            "trust", "state", "size", "resident_bytes", "chunks", "chunk_size",
            "verified", "format", "last_eviction"):
    assert "user.modelfs." + doc in names, f"documented attribute {doc} missing"
for n in names:
    assert len(n.encode()) <= 255, n
    assert all(0x20 < ord(c) < 0x7f for c in n), repr(n)
    os.getxattr(f, n)                        # every listed name can be read
print(f"{os.path.basename(f)}: {len(names)} attributes, {size} bytes of names")
PY
done
# The safetensors metadata had 5002 entries: 256 listed at most, the rest counted.
omitted=$(getfattr --only-values -n user.modelfs.meta_omitted "$MNT/$S" 2>/dev/null)
[ "${omitted:-0}" -ge 4700 ] || fail "meta_omitted is '${omitted}' for 5002 metadata entries"
v=$(getfattr --only-values -n user.modelfs.safetensors.metadata.generator "$MNT/$S" 2>/dev/null)
[ "$v" = mfs-gen ] || fail "the first metadata entries are not listed (generator='$v')"
# The GGUF's compact metadata is small and complete: nothing omitted.
getfattr -n user.modelfs.meta_omitted "$MNT/$G" >/dev/null 2>&1 &&
	fail "the GGUF's compact metadata was cut"
[ "$(getfattr --only-values -n user.modelfs.gguf.kv_count "$MNT/$G" 2>/dev/null)" -gt 5000 ] ||
	fail "gguf.kv_count does not show the 5000 extra keys"
unmount "$MNT"
check_log
finish

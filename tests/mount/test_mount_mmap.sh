#!/bin/bash
# test_mount_mmap.sh - an mmap reader touching pages out of order gets the
# published bytes (compared page by page with the source file), and its
# out-of-order pattern makes the daemon prefetch the rest of the file in the
# background: the file becomes wholly resident without being read through.
. "$(dirname "$0")/lib.sh"
command -v getfattr >/dev/null || skip "getfattr is needed"

make_repo org/mm Mm-Q4_K_M.gguf --tensors 16 --tensor-bytes 2000000
publish_trust org/mm
REF=$(mfs add --endpoint "file://$REPO" org/mm 2>/dev/null) || die "add failed"
mount_fg

python3 - "$MNT/$REF" "$REPO/org/mm/Mm-Q4_K_M.gguf" <<'EOF' || fail "mmap reader got wrong bytes"
import mmap, random, sys
mnt, src = sys.argv[1], sys.argv[2]
want = open(src, "rb").read()
with open(mnt, "rb") as f:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    assert len(m) == len(want), (len(m), len(want))
    pages = list(range(0, len(want), 4096))
    random.seed(7)
    # A loader's pattern: a few tensors far apart, backwards and forwards.
    picks = sorted(random.sample(pages, 12), reverse=True) + random.sample(pages, 12)
    for off in picks:
        n = min(4096, len(want) - off)
        if m[off:off + n] != want[off:off + n]:
            print("mismatch at", off); sys.exit(1)
    m.close()
print("mmap: %d out-of-order pages matched" % len(picks))
EOF

# The pattern asked for the whole file in the background.
chunks=""
for _ in $(seq 100); do
	chunks=$(getfattr --only-values -n user.modelfs.chunks "$MNT/$REF" 2>/dev/null)
	[ -n "$chunks" ] && [ "${chunks%/*}" = "${chunks#*/}" ] && break
	sleep 0.1
done
[ "${chunks%/*}" = "${chunks#*/}" ] || fail "background prefetch did not complete the file: chunks $chunks"
echo "resident after out-of-order reads: $chunks chunks"

[ "$(sha_of "$MNT/$REF")" = "$(published_sha org/mm Mm-Q4_K_M.gguf)" ] || fail "sha256 differs"
unmount "$MNT"
chunks_consistent || fail "a chunk file does not match its name"
check_log
finish

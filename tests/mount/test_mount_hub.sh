#!/bin/bash
# test_mount_hub.sh - the mount reading through the HTTP test hub (LFS files
# redirected to its CDN port): 16 concurrent readers over four files get the
# published bytes and every byte is fetched from the CDN once (single-flight
# and prefetch never fetch a chunk twice); a chunk the server corrupts once is
# fetched again and served right; a chunk the server always corrupts is never
# served: the read fails with EIO, the daemon logs why, and no bad chunk is
# in the cache; once the server is fixed the same read succeeds.
. "$(dirname "$0")/lib.sh"

start_hub
make_repo org/many Many-Q4_K_M.gguf --tensors 8 --tensor-bytes 2500000 --split 4
make_repo org/bad Bad-Q4_K_M.gguf --tensors 4 --tensor-bytes 1500000 --split 2
publish_trust org/many
publish_trust org/bad
hub_put org/many
hub_put org/bad
REF1=$(mfs add --endpoint "$HUB" org/many 2>"$WORK/add.err") || die "add org/many: $(cat "$WORK/add.err")"
REF2=$(mfs add --endpoint "$HUB" org/bad 2>"$WORK/add.err") || die "add org/bad: $(cat "$WORK/add.err")"
DIR1=$(dirname "$MNT/$REF1")
DIR2=$(dirname "$MNT/$REF2")

mount_fg
hub_ctl reset

# ---- 16 concurrent readers over 4 files -------------------------------------
files=("$DIR1"/Many-Q4_K_M-0000{1,2,3,4}-of-00004.gguf)
for f in "${files[@]}"; do [ -f "$f" ] || die "$f missing"; done
start=$(date +%s.%N)
for r in $(seq 0 15); do
	f=${files[$((r % 4))]}
	(sha_of "$f" >"$WORK/reader.$r") &
done
wait_readers() {
	local p
	for p in $(jobs -p); do
		[ "$p" = "$HUB_PID" ] || [ "$p" = "$DAEMON" ] || wait "$p"
	done
}
wait_readers
end=$(date +%s.%N)
for r in $(seq 0 15); do
	f=${files[$((r % 4))]}
	[ "$(cat "$WORK/reader.$r")" = "$(published_sha org/many "$(basename "$f")")" ] ||
		fail "reader $r of $(basename "$f") got wrong bytes"
done
total=0
for f in "${files[@]}"; do total=$((total + $(stat -c %s "$f"))); done
python3 -c "import sys; t=float(sys.argv[2])-float(sys.argv[1]); print('16 readers, %d bytes of files: %.2f s' % (int(sys.argv[3]), t))" \
	"$start" "$end" "$total"

# Every byte of each file came from the CDN at most once (the header chunk
# came at admission, before the reset), and all of it came.
hub_ranges "Many-*" >"$WORK/ranges.txt"
python3 - "$WORK/ranges.txt" "$DIR1" <<'EOF' || fail "some bytes were fetched twice or never"
import os, re, sys
seen = {}
ok = True
for line in open(sys.argv[1]):
    path, rng = line.split()
    m = re.match(r"bytes=(\d+)-(\d+)$", rng)
    a, b = int(m.group(1)), int(m.group(2))
    for (x, y) in seen.get(path, []):
        if a <= y and x <= b:
            print("overlap in %s: %s and %d-%d" % (path, rng, x, y)); ok = False
    seen.setdefault(path, []).append((a, b))
for path, rs in seen.items():
    size = os.path.getsize(os.path.join(sys.argv[2], os.path.basename(path)))
    got = sum(b - a + 1 for a, b in rs)
    print("%s: %d range requests, %d of %d bytes" % (os.path.basename(path), len(rs), got, size))
    if got > size:
        ok = False
sys.exit(0 if ok else 1)
EOF
n_req=$(wc -l <"$WORK/ranges.txt")
[ "$n_req" -gt 0 ] || fail "no range request reached the CDN (were the files resident already?)"

# ---- a chunk corrupted once: fetched again, served right ---------------------
B1="$DIR2/Bad-Q4_K_M-00001-of-00002.gguf"
B2="$DIR2/Bad-Q4_K_M-00002-of-00002.gguf"
hub_ctl "fault?name=corrupt&path=*Bad-Q4_K_M-00001-of-00002.gguf&count=1"
[ "$(sha_of "$B1")" = "$(published_sha org/bad Bad-Q4_K_M-00001-of-00002.gguf)" ] ||
	fail "a once-corrupted file was not served right after the retry"

# ---- a chunk corrupted always: EIO, logged, never cached ---------------------
hub_ctl "fault?name=corrupt&path=*Bad-Q4_K_M-00002-of-00002.gguf&count=0"
out=$(dd if="$B2" of=/dev/null bs=1M skip=2 count=1 2>&1) && fail "read of a corrupted chunk succeeded"
grep -q "Input/output error" <<<"$out" || fail "read of a corrupted chunk: $out"
grep -i "error" "$WORK/daemon.log" | grep -q "Bad-Q4_K_M-00002" ||
	fail "the daemon did not log the failed read"
chunks_consistent || fail "a chunk in the cache does not match its digest"

# ---- the server is fixed: the same read succeeds -----------------------------
hub_ctl reset
[ "$(sha_of "$B2")" = "$(published_sha org/bad Bad-Q4_K_M-00002-of-00002.gguf)" ] ||
	fail "after the fault was cleared the file was not served right"
chunks_consistent || fail "a chunk in the cache does not match its digest"

unmount "$MNT"
check_log "Bad-Q4_K_M-00002"
finish

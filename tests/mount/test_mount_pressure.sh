#!/bin/bash
# test_mount_pressure.sh - the cache under pressure through a real mount
# (product.md §6, issue 5).
#
# Part A: model O held open (by the shell and by a reader that re-reads it
# over and over, dropping its cached pages first so that every pass reaches
# the daemon, and compares its digest each pass) and model P pinned, both
# wholly resident; then reads of other models push about four times the quota
# through the cache. Every chunk of O and P stays resident with the same chunk
# file (same inode) throughout, no eviction evidence names them, `modelfs
# evict` and `gc` from another process leave them alone, the reader never
# sees a wrong byte, and the usage never passes the quota (checked after
# every read and by a sampler polling the index). Once O is closed and P
# unpinned, more pressure evicts them and the evidence names them.
#
# Part B: two pinned models that do not both fit under the quota. The one
# read second fails with ENOSPC (not EIO) where its bytes no longer fit, the
# daemon log says the quota is full and held by open or pinned artifacts,
# and nothing else breaks: the resident pinned model reads right, `status`,
# `verify`, `why`, a listing and a second mount of the same store work. After
# `modelfs unpin` of the first, the failed read succeeds with the right bytes.
# The usage never passes the quota.
. "$(dirname "$0")/lib.sh"

CHUNK=1M
MIB=1048576
# name repo-path tensors seed
models=(
	"O org/open Open-Q4_K_M.gguf 2 11"
	"P org/pinned Pinned-Q4_K_M.gguf 2 12"
	"X1 org/x1 X1-Q4_K_M.gguf 2 21" "X2 org/x2 X2-Q4_K_M.gguf 2 22"
	"X3 org/x3 X3-Q4_K_M.gguf 2 23" "X4 org/x4 X4-Q4_K_M.gguf 2 24"
	"X5 org/x5 X5-Q4_K_M.gguf 2 25" "X6 org/x6 X6-Q4_K_M.gguf 2 26"
	"B1 org/b1 B1-Q4_K_M.gguf 3 31" "B2 org/b2 B2-Q4_K_M.gguf 3 32"
)
declare -A REF REPOOF FILEOF SIZE

QUOTA=$((8 * MIB))
# The quota holds from the first admission on.
mfs gc --quota 8M >/dev/null 2>&1 || die "gc --quota 8M failed"
for m in "${models[@]}"; do
	read -r k repo file tensors seed <<<"$m"
	make_repo "$repo" "$file" --tensors "$tensors" --tensor-bytes 950000 --seed "$seed"
	publish_trust "$repo"
	REF[$k]=$(mfs add --endpoint "file://$REPO" "$repo" 2>"$WORK/add.err") ||
		die "add $repo: $(cat "$WORK/add.err")"
	REPOOF[$k]=$repo
	FILEOF[$k]=$file
	SIZE[$k]=$(stat -c %s "$REPO/$repo/$file")
done
XS=(X1 X2 X3 X4 X5 X6)

# ---- helpers -------------------------------------------------------------------
path_of() { echo "$MNT/${REF[$1]}"; }
sha_want() { published_sha "${REPOOF[$1]}" "${FILEOF[$1]}"; }

# read_model K WHAT [MNT]: reads model K through the mount, compares its digest.
read_model() {
	local f="${3:-$MNT}/${REF[$1]}" got
	drop_pages "$f"
	got=$(sha_of "$f" 2>"$WORK/read.err")
	[ "$got" = "$(sha_want "$1")" ] ||
		fail "$2: model $1 read '$got' through the mount: $(cat "$WORK/read.err")"
}

under_quota() {
	local u
	u=$(usage)
	[ "$u" -le "${2:-$QUOTA}" ] || fail "$1: usage $u bytes is over the quota ${2:-$QUOTA}"
}

# The chunk digests of model K (hex), one a line.
digests_of() {
	q "SELECT lower(hex(c.digest)) FROM chunks c JOIN artifact_files af ON af.file_id = c.file_id
		JOIN artifacts a ON a.id = af.artifact_id WHERE a.canonical_ref = '${REF[$1]}' ORDER BY c.idx"
}
# How many chunks of model K are resident.
resident_of() {
	q "SELECT count(*) FROM chunks c JOIN artifact_files af ON af.file_id = c.file_id
		JOIN artifacts a ON a.id = af.artifact_id JOIN resident r ON r.digest = c.digest
		WHERE a.canonical_ref = '${REF[$1]}'"
}
n_chunks_of() {
	q "SELECT f.n_chunks FROM files f JOIN artifact_files af ON af.file_id = f.id
		JOIN artifacts a ON a.id = af.artifact_id WHERE a.canonical_ref = '${REF[$1]}'"
}
chunk_file() { echo "$STORE/chunks/${1:0:2}/$1"; }
# Eviction evidence after row EV0 that names model K (by artifact or chunk).
evidence_of() {
	local d list=""
	for d in $(digests_of "$1"); do list="$list${list:+,}X'$d'"; done
	q "SELECT count(*) FROM evictions WHERE id > $EV0 AND (artifact = '${REF[$1]}' OR digest IN ($list))"
}


mount_fg "$MNT" -o quota=8M
for m in "${models[@]}"; do
	read -r k _ <<<"$m"
	[ -f "$(path_of "$k")" ] || die "$(path_of "$k") missing"
done
under_quota "after admitting ${#models[@]} models"

# =============================================================================
# Part A: an open file and a pinned artifact under pressure
# =============================================================================
for k in O P; do
	[ "$(n_chunks_of $k)" -ge 2 ] || die "model $k has fewer than 2 chunks"
done
for x in "${XS[@]}"; do
	[ $((SIZE[O] + SIZE[P] + SIZE[$x])) -lt "$QUOTA" ] || die "O, P and $x do not fit the quota together"
done
mfs pin "${REF[P]}" >/dev/null 2>&1 || fail "pin P failed"
read_model P "P, pinned, first read"

# The reader: holds O open, and until told to stop re-reads it from the start
# (its cached pages dropped first, so each pass is served by the daemon) and
# compares the digest. Exits 1 on a wrong byte, 2 on a read error.
cat >"$WORK/reader.py" <<'EOF'
import hashlib, os, sys, time
path, want, stop, ready, passes = sys.argv[1:6]
fd = os.open(path, os.O_RDONLY)
n = 0
while True:
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        h = hashlib.sha256()
        off = 0
        while True:
            b = os.pread(fd, 262144, off)
            if not b:
                break
            h.update(b)
            off += len(b)
            time.sleep(0.002)   # slow: many reads spread over the pressure
    except OSError as e:
        print("reader: pass %d: read failed at %d: errno %d %s" % (n + 1, off, e.errno, e.strerror),
              flush=True)
        sys.exit(2)
    if h.hexdigest() != want:
        print("reader: pass %d: digest %s, want %s" % (n + 1, h.hexdigest(), want), flush=True)
        sys.exit(1)
    n += 1
    with open(passes, "w") as f:
        f.write("%d\n" % n)
    if n == 1:
        open(ready, "w").close()
    if os.path.exists(stop):
        break
    time.sleep(0.05)
os.close(fd)
EOF
O_FILE=$(path_of O)
exec 3<"$O_FILE"
python3 "$WORK/reader.py" "$O_FILE" "$(sha_want O)" "$WORK/reader.stop" "$WORK/reader.ready" \
	"$WORK/reader.passes" >"$WORK/reader.log" 2>&1 &
READER=$!
PIDS+=("$READER")
for _ in $(seq 100); do [ -f "$WORK/reader.ready" ] && break; kill -0 "$READER" 2>/dev/null || break; sleep 0.1; done
[ -f "$WORK/reader.ready" ] || die "the reader of O did not finish a first pass: $(cat "$WORK/reader.log")"

# The baseline: every chunk of O and P resident, and their chunk files.
declare -A INO
for k in O P; do
	[ "$(resident_of $k)" = "$(n_chunks_of $k)" ] || die "model $k is not wholly resident before the pressure"
	for d in $(digests_of $k); do
		INO[$d]=$(stat -c %i "$(chunk_file "$d")") || die "no chunk file for $d of $k"
	done
done
EV0=$(q 'SELECT coalesce(max(id), 0) FROM evictions')
FETCH0=$(counter fetched_bytes)
PASS0=$(cat "$WORK/reader.passes")

# check_held WHAT: every chunk of O and P resident, same chunk file.
check_held() {
	local k d ino
	for k in O P; do
		[ "$(resident_of $k)" = "$(n_chunks_of $k)" ] ||
			fail "$1: $(( $(n_chunks_of $k) - $(resident_of $k) )) chunk(s) of $k are no longer resident"
		for d in $(digests_of $k); do
			ino=$(stat -c %i "$(chunk_file "$d")" 2>/dev/null)
			[ "$ino" = "${INO[$d]}" ] || fail "$1: the chunk file of $d ($k) changed (inode ${INO[$d]} -> ${ino:-gone})"
		done
	done
	kill -0 "$READER" 2>/dev/null || fail "$1: the reader of O stopped: $(cat "$WORK/reader.log")"
}

sampler_start
rounds=3
for r in $(seq 1 $rounds); do
	for x in "${XS[@]}"; do
		read_model "$x" "pressure round $r"
		under_quota "pressure round $r after $x"
		check_held "pressure round $r after $x"
	done
done
# Other processes try too: evict refuses both, gc leaves them.
"$MODELFS" --store "$STORE" evict "${REF[O]}" >"$WORK/ev.out" 2>&1 && fail "evict of the open O succeeded"
grep -q "is open (pid" "$WORK/ev.out" || fail "evict of the open O: $(cat "$WORK/ev.out")"
"$MODELFS" --store "$STORE" evict "${REF[P]}" >"$WORK/ev.out" 2>&1 && fail "evict of the pinned P succeeded"
grep -q "pinned" "$WORK/ev.out" || fail "evict of the pinned P: $(cat "$WORK/ev.out")"
"$MODELFS" --store "$STORE" rm "${REF[O]}" >"$WORK/ev.out" 2>&1 && fail "rm of the open O succeeded"
sampler_stop "part A, the pressure"
# (Not sampled: lowering the quota below the usage passes the quota until gc
# has evicted down to it.)
mfs gc --quota 4M >"$WORK/gc.out" 2>&1 || fail "gc --quota 4M failed: $(cat "$WORK/gc.out")"
check_held "after gc --quota 4M from another process"
under_quota "after gc --quota 4M" $((4 * MIB))
mfs gc --quota 8M >"$WORK/gc.out" 2>&1 || fail "gc --quota 8M failed: $(cat "$WORK/gc.out")"

fetched=$(( $(counter fetched_bytes) - FETCH0 ))
echo "part A: $fetched bytes fetched under a quota of $QUOTA"
[ "$fetched" -ge $((3 * QUOTA)) ] || fail "the pressure fetched only $fetched bytes (want >= 3 x the quota)"
[ "$(q "SELECT count(*) FROM evictions WHERE id > $EV0 AND reason = 'quota'")" -gt 0 ] ||
	fail "the pressure evicted nothing"
for k in O P; do
	n=$(evidence_of $k)
	[ "$n" = 0 ] || fail "$n eviction row(s) name the active model $k: $(q "SELECT artifact, path, reason FROM evictions WHERE id > $EV0 AND artifact = '${REF[$k]}' LIMIT 3")"
done
passes=$(( $(cat "$WORK/reader.passes") - PASS0 ))
[ "$passes" -ge 3 ] || fail "the reader of O made only $passes pass(es) during the pressure"
mfs why "$O_FILE" >"$WORK/why.txt" 2>&1 || fail "why O failed"
grep -q "open by pid" "$WORK/why.txt" || fail "why does not say O is open: $(cat "$WORK/why.txt")"
mfs why "$(path_of P)" >"$WORK/why.txt" 2>&1 || fail "why P failed"
grep -q "pinned" "$WORK/why.txt" || fail "why does not say P is pinned: $(cat "$WORK/why.txt")"

# The reader stops, its passes all right.
touch "$WORK/reader.stop"
rc=0
wait "$READER" || rc=$?
[ "$rc" = 0 ] || fail "the reader of O exited $rc: $(cat "$WORK/reader.log")"
echo "the reader of O made $(cat "$WORK/reader.passes") passes, $passes under pressure"
exec 3<&-

# Released: O closed, P unpinned. More pressure evicts them, with evidence.
mfs unpin "${REF[P]}" >/dev/null 2>&1 || fail "unpin P failed"
for _ in $(seq 50); do
	[ "$(q "SELECT count(*) FROM pins p JOIN artifacts a ON a.id = p.artifact_id
		WHERE a.canonical_ref = '${REF[O]}' AND p.count > 0")" = 0 ] && break
	sleep 0.1
done
sampler_start
for x in "${XS[@]}"; do
	read_model "$x" "pressure after the release"
	under_quota "pressure after the release, after $x"
done
sampler_stop "part A, after the release"
for k in O P; do
	left=$(resident_of $k)
	[ "$left" -lt "$(n_chunks_of $k)" ] || fail "$k kept all its chunks after release and more than the quota of pressure"
	[ "$(evidence_of $k)" -gt 0 ] || fail "no evidence names the eviction of the released $k"
	mfs why --json "$(path_of $k)" >"$WORK/why.json" 2>&1
	python3 -c 'import json, sys; o = json.load(open(sys.argv[1])); assert o["evictions"][0]["reason"] == "quota"' \
		"$WORK/why.json" 2>/dev/null || fail "why $k does not name a quota eviction: $(cat "$WORK/why.json")"
done
read_model O "O re-read after its eviction"
read_model P "P re-read after its eviction"

# =============================================================================
# Part B: a pinned set larger than the quota
# =============================================================================
QUOTA=$((5 * MIB))
[ $((SIZE[B1] + SIZE[B2])) -gt "$QUOTA" ] || die "B1 and B2 fit the quota together"
[ "${SIZE[B1]}" -le "$QUOTA" ] || die "B1 alone does not fit the quota"
mfs gc --quota 5M >"$WORK/gc.out" 2>&1 || fail "gc --quota 5M failed: $(cat "$WORK/gc.out")"
under_quota "after gc --quota 5M"
sampler_start
mfs pin "${REF[B1]}" >/dev/null 2>&1 || fail "pin B1 failed"
mfs pin "${REF[B2]}" >/dev/null 2>&1 || fail "pin B2 failed"
read_model B1 "B1, pinned, fits"
under_quota "after reading B1"
[ "$(resident_of B1)" = "$(n_chunks_of B1)" ] || fail "B1 is not wholly resident after its read"
LOGLINES=$(wc -l <"$WORK/daemon.log")

# Reading B2 must fail with ENOSPC where its bytes no longer fit.
B2_FILE=$(path_of B2)
drop_pages "$B2_FILE"
python3 - "$B2_FILE" >"$WORK/b2.out" 2>&1 <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
off = 0
try:
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            break
        off += len(b)
    print("read all %d bytes" % off)
except OSError as e:
    print("errno %d at %d: %s" % (e.errno, off, e.strerror))
EOF
grep -q "^errno 28 at " "$WORK/b2.out" ||
	fail "reading the pinned B2 that does not fit: want errno 28 (ENOSPC), got: $(cat "$WORK/b2.out")"
echo "reading B2: $(cat "$WORK/b2.out")"
drop_pages "$B2_FILE"
out=$(cat "$B2_FILE" 2>&1 >/dev/null) && fail "cat of B2 succeeded"
grep -q "No space left on device" <<<"$out" || fail "cat of B2: '$out'"
under_quota "after the failed reads of B2"
tail -n +$((LOGLINES + 1)) "$WORK/daemon.log" >"$WORK/daemon.new"
grep -Eq "quota of [0-9.]+ [KMG]iB is full: .* held by open or pinned artifacts" "$WORK/daemon.new" ||
	fail "the daemon log has no line saying the quota is full of open or pinned bytes: $(head -c 2000 "$WORK/daemon.new")"
grep -q "Input/output error\|\bEIO\b" "$WORK/daemon.new" && fail "the daemon log speaks of EIO for a full quota"

# Nothing else breaks.
read_model B1 "B1, resident and pinned, while the quota is full"
dd if="$B2_FILE" bs=1M count=1 2>/dev/null | cmp -s - <(head -c $MIB "$REPO/${REPOOF[B2]}/${FILEOF[B2]}") ||
	fail "the resident first MiB of B2 does not read right while the quota is full"
ls "$MNT/org" >/dev/null || fail "listing the mount failed"
getfattr -n user.modelfs.state "$B2_FILE" >/dev/null 2>&1 || ! command -v getfattr >/dev/null ||
	fail "getfattr on B2 failed"
mfs status >"$WORK/status.txt" 2>&1 || fail "status failed: $(cat "$WORK/status.txt")"
grep -q "^quota: *5.0 MiB" "$WORK/status.txt" || fail "status does not show the quota: $(cat "$WORK/status.txt")"
mfs verify >"$WORK/verify.txt" 2>&1 || fail "verify failed while the quota is full: $(cat "$WORK/verify.txt")"
mfs why "$B2_FILE" >"$WORK/why.txt" 2>&1 || fail "why B2 failed: $(cat "$WORK/why.txt")"
mfs ls >/dev/null 2>&1 || fail "ls failed"
MNT2="$WORK/mnt2"
mkdir -p "$MNT2"
"$MODELFS" --store "$STORE" mount "$MNT2" -f >>"$WORK/daemon2.log" 2>&1 &
D2=$!
PIDS+=("$D2")
if wait_mounted "$MNT2"; then
	read_model B1 "B1 through a second mount" "$MNT2"
	fusermount3 -u "$MNT2" || fail "unmounting the second mount failed"
	rc=0
	wait "$D2" || rc=$?
	[ "$rc" = 0 ] || fail "the second mount's daemon exited $rc"
else
	fail "a second mount of the store did not become ready: $(cat "$WORK/daemon2.log")"
fi
under_quota "with the quota full"

# Unpin B1: the failed read now succeeds.
mfs unpin "${REF[B1]}" >/dev/null 2>&1 || fail "unpin B1 failed"
read_model B2 "B2 after unpinning B1"
under_quota "after reading B2"
[ "$(resident_of B2)" = "$(n_chunks_of B2)" ] || fail "B2 is not wholly resident after its read"
# B1 no longer fits beside the pinned B2 (ENOSPC again would be right); with
# B2 unpinned too it is read again.
mfs unpin "${REF[B2]}" >/dev/null 2>&1 || fail "unpin B2 failed"
read_model B1 "B1 after unpinning both"
under_quota "at the end"
sampler_stop "part B"

unmount "$MNT"
chunks_consistent || fail "a chunk file does not match its name"
check_log "quota of .* is full|B2-Q4_K_M"
finish

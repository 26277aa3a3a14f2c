#!/bin/bash
# test_mmap_populate.sh - loaders that map the model with MAP_POPULATE, as
# llama.cpp's default loader does (issue 9, finding 13; docs/mount.md).
#
# The kernel retries a failed page read forever inside mmap(MAP_POPULATE),
# whatever errno the daemon answers. The attack: a CDN that answers 503 for
# ever once the header is cached, and a quota that cannot hold the model.
# Each load must end within a bound with an error, the daemon must answer a
# bounded number of reads (the failure memory answers a repeat at once, and
# a loader the kernel keeps looping is ended by a signal), and the log must
# stay small. Runs, each on its own mount so the daemon's counters (its
# "unmounting" line) belong to that run alone:
#   (c) healthy: the loader with MAP_POPULATE, and without, gets the
#       published bytes;
#   (a) 503 forever: the MAP_POPULATE loader is ended (SIGTERM) within the
#       bound; one that catches SIGTERM is ended too (SIGKILL); a loader
#       without MAP_POPULATE gets SIGBUS from the kernel and no signal from
#       the daemon; read(2) gets EIO and is not signalled either; the CDN
#       sees a bounded number of requests and the log stays small;
#   (b) a model larger than the quota: open fails with EFBIG at once and
#       the log says why; a model that fits the quota but not beside the
#       pinned ones: reads fail with ENOSPC and the populate loop is ended;
#       300 more failed reads by 300 processes leave a log of bounded size
#       that says how many similar lines it left out.
. "$(dirname "$0")/../mount/lib.sh"
: "${MFS_LOADER:=${MFS_BUILD_DIR:-$(dirname "$MODELFS")}/mfs-mmap-loader}"
[ -x "$MFS_LOADER" ] || skip "mfs-mmap-loader is not built"

BOUND=70          # seconds a failing load may take (one fetch cycle and more)
MAX_LOG_LINES=150 # per run
MAX_LOG_BYTES=$((64 * 1024))
MAX_CDN=80        # range requests for the failing file per run

CHUNK=1M
start_hub
make_repo org/good Good-Q4_K_M.gguf --tensors 6 --tensor-bytes 1000000 --seed 1
make_repo org/bad Bad-Q4_K_M.gguf --tensors 6 --tensor-bytes 1000000 --seed 2
make_repo org/big Big-Q4_K_M.gguf --tensors 6 --tensor-bytes 1000000 --seed 3
make_repo org/held Held-Q4_K_M.gguf --tensors 3 --tensor-bytes 1000000 --seed 4
make_repo org/fits Fits-Q4_K_M.gguf --tensors 3 --tensor-bytes 1000000 --seed 5
declare -A REF
for m in good bad big held fits; do
	publish_trust "org/$m"
	hub_put "org/$m"
	REF[$m]=$(mfs add --endpoint "$HUB" "org/$m" 2>"$WORK/add.err") ||
		die "add org/$m: $(cat "$WORK/add.err")"
done

# run_loader LABEL ARGS... : runs the loader under a hard timeout; sets
# LRC (its exit status), LOUT (its output) and SECS (wall time).
run_loader() {
	local label=$1 t0 t1
	shift
	t0=$(date +%s.%N)
	LOUT=$(timeout -s KILL $((BOUND + 60)) "$MFS_LOADER" "$@" 2>&1)
	LRC=$?
	t1=$(date +%s.%N)
	SECS=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$t1")
	echo "$label: exit $LRC after $SECS s: $(tr '\n' ' ' <<<"$LOUT")"
	python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" \
		"$SECS" "$BOUND" || fail "$label: took $SECS s (bound $BOUND s)"
}

# Each run gets its own mount and its own slice of the daemon log.
LOG0=0
begin_run() {
	LOG0=$(wc -l <"$WORK/daemon.log" 2>/dev/null || echo 0)
	mount_fg "$MNT" "$@"
	hub_ctl reset
}
# end_run LABEL: unmounts, then checks the size of this run's log and reads
# the daemon's counters: READS, REMEMBERED, ENDED.
end_run() {
	sleep 0.5 # a process ended by a signal lets go of the mount
	unmount "$MNT"
	tail -n +$((LOG0 + 1)) "$WORK/daemon.log" >"$WORK/run.log"
	local lines bytes
	lines=$(wc -l <"$WORK/run.log")
	bytes=$(wc -c <"$WORK/run.log")
	echo "$1: daemon log $lines lines, $bytes bytes"
	[ "$lines" -le "$MAX_LOG_LINES" ] || fail "$1: the daemon wrote $lines log lines"
	[ "$bytes" -le "$MAX_LOG_BYTES" ] || fail "$1: the daemon wrote $bytes bytes of log"
	local u
	u=$(grep "mount: unmounting" "$WORK/run.log" | tail -1)
	READS=$(sed -n 's/.*(\([0-9]*\) reads,.*/\1/p' <<<"$u")
	REMEMBERED=$(sed -n 's/.* \([0-9]*\) answered from the failure memory.*/\1/p' <<<"$u")
	ENDED=$(sed -n 's/.* \([0-9]*\) populate loops ended.*/\1/p' <<<"$u")
	[ -n "$READS" ] && [ -n "$REMEMBERED" ] && [ -n "$ENDED" ] ||
		fail "$1: no counters in the daemon's unmount line: '$u'"
	echo "$1: $READS reads answered, $REMEMBERED from the failure memory, $ENDED loops ended"
}
cdn_requests() { hub_ranges "$1" | wc -l; }

# ---- (c) healthy: the bytes are right -----------------------------------------
begin_run
run_loader "healthy, MAP_POPULATE" "$MNT/${REF[good]}"
[ "$LRC" = 0 ] || fail "healthy MAP_POPULATE load failed: $LOUT"
grep -q "ok sha256 $(published_sha org/good Good-Q4_K_M.gguf)" <<<"$LOUT" ||
	fail "healthy MAP_POPULATE load: wrong bytes: $LOUT"
drop_pages "$MNT/${REF[good]}"
run_loader "healthy, no MAP_POPULATE, MAP_PRIVATE" --no-populate --private "$MNT/${REF[good]}"
[ "$LRC" = 0 ] && grep -q "ok sha256 $(published_sha org/good Good-Q4_K_M.gguf)" <<<"$LOUT" ||
	fail "healthy plain mmap load failed or got wrong bytes: $LOUT"
end_run "healthy"
check_log
chunks_consistent || fail "a chunk in the cache does not match its digest"

# ---- (a) the CDN answers 503 forever once the header is cached --------------
BAD="$MNT/${REF[bad]}"
begin_run
hub_ctl "fault?name=503&path=*Bad-Q4_K_M.gguf&count=0"
run_loader "503, MAP_POPULATE" "$BAD"
[ "$LRC" = 143 ] || fail "503, MAP_POPULATE: want the loader ended by SIGTERM (143), got $LRC: $LOUT"
grep -q "^mmap .* ok" <<<"$LOUT" && fail "503, MAP_POPULATE: mmap returned, yet pages could not be read"
n_cdn=$(cdn_requests "*Bad-Q4_K_M.gguf")
echo "503, MAP_POPULATE: $n_cdn CDN requests"
[ "$n_cdn" -le "$MAX_CDN" ] || fail "503, MAP_POPULATE: $n_cdn requests reached the CDN"
[ "$n_cdn" -gt 0 ] || fail "503, MAP_POPULATE: no request reached the CDN (was the file resident?)"
end_run "503, MAP_POPULATE"
[ "$ENDED" -ge 1 ] || fail "503, MAP_POPULATE: the daemon ended no populate loop"
[ "$READS" -le 50 ] || fail "503, MAP_POPULATE: the daemon answered $READS reads"
grep -q "(mfs-mmap-load[a-z]*) is held by the kernel inside mmap(MAP_POPULATE).*sent SIGTERM" "$WORK/run.log" ||
	fail "503, MAP_POPULATE: no log line saying why the loader was ended"
grep -q "read of org/bad@.*failed: .*HTTP 503" "$WORK/run.log" ||
	fail "503, MAP_POPULATE: no log line with the reason of the failed read"

# A loader that catches SIGTERM (still stuck in mmap) is ended with SIGKILL.
begin_run
hub_ctl "fault?name=503&path=*Bad-Q4_K_M.gguf&count=0"
run_loader "503, MAP_POPULATE, SIGTERM caught" --catch-term "$BAD"
[ "$LRC" = 137 ] || fail "503, SIGTERM caught: want the loader ended by SIGKILL (137), got $LRC: $LOUT"
end_run "503, MAP_POPULATE, SIGTERM caught"
[ "$ENDED" -ge 2 ] || fail "503, SIGTERM caught: want SIGTERM then SIGKILL, $ENDED signals counted"
[ "$REMEMBERED" -le 1000 ] || fail "503, SIGTERM caught: $REMEMBERED repeats answered before the end"
grep -q "sent SIGKILL (it caught SIGTERM)" "$WORK/run.log" || fail "503, SIGTERM caught: no SIGKILL line"

# populate_loop=wait: the daemon signals nobody; the loader stays inside
# mmap() (the kernel's loop) until someone else ends it, answered from the
# failure memory with a bounded log.
begin_run -o populate_loop=wait
hub_ctl "fault?name=503&path=*Bad-Q4_K_M.gguf&count=0"
LOUT=$(timeout -s KILL 20 "$MFS_LOADER" "$BAD" 2>&1)
LRC=$?
echo "503, MAP_POPULATE, populate_loop=wait: exit $LRC: $(tr '\n' ' ' <<<"$LOUT")"
[ "$LRC" = 137 ] || fail "populate_loop=wait: want the loader still in mmap after 20 s (137 from timeout), got $LRC"
end_run "503, MAP_POPULATE, populate_loop=wait"
[ "$ENDED" = 0 ] || fail "populate_loop=wait: the daemon sent $ENDED signals"
[ "$REMEMBERED" -ge 1 ] || fail "populate_loop=wait: no repeat answered from the failure memory"
"$MODELFS" --store "$STORE" mount "$MNT" -f -o populate_loop=sometimes >"$WORK/bad.out" 2>&1 &&
	fail "populate_loop=sometimes accepted"
grep -q "bad populate_loop 'sometimes'" "$WORK/bad.out" || fail "populate_loop=sometimes: unclear error: $(cat "$WORK/bad.out")"

# Without MAP_POPULATE the kernel gives up itself (SIGBUS at the touch), and
# a read(2) sees EIO: neither is signalled by the daemon.
begin_run
hub_ctl "fault?name=503&path=*Bad-Q4_K_M.gguf&count=0"
run_loader "503, no MAP_POPULATE" --no-populate "$BAD"
[ "$LRC" = 4 ] && grep -q "sigbus at " <<<"$LOUT" ||
	fail "503, no MAP_POPULATE: want SIGBUS at the touch (exit 4), got $LRC: $LOUT"
out=$(timeout -s KILL $BOUND dd if="$BAD" of=/dev/null bs=1M skip=3 count=1 2>&1)
rc=$?
echo "503, read(2): exit $rc: $(tail -1 <<<"$out")"
[ "$rc" = 1 ] && grep -q "Input/output error" <<<"$out" || fail "503, read(2): want EIO, got exit $rc: $out"
end_run "503, no MAP_POPULATE and read(2)"
[ "$ENDED" = 0 ] || fail "the daemon signalled a process that was not in a populate loop"
[ "$READS" -le 50 ] || fail "503, no MAP_POPULATE: the daemon answered $READS reads"
chunks_consistent || fail "a chunk in the cache does not match its digest"

# ---- (b) quota ----------------------------------------------------------------
# A model larger than the quota: refused at open (EFBIG), before any map.
BIGSIZE=$(stat -c %s "$REPO/org/big/Big-Q4_K_M.gguf")
begin_run -o quota=4M
[ "$BIGSIZE" -gt $((4 * 1048576)) ] || die "org/big fits a 4 MiB quota"
run_loader "larger than the quota" "$MNT/${REF[big]}"
[ "$LRC" = 2 ] && grep -q "^open .* errno 27" <<<"$LOUT" ||
	fail "larger than the quota: want open to fail with EFBIG (27), got $LRC: $LOUT"
end_run "larger than the quota"
grep -q "open of '.*Big-Q4_K_M.gguf' failed: the file .* is larger than the cache quota" "$WORK/run.log" ||
	fail "larger than the quota: no log line saying why the open was refused"

# A model that fits the quota, but not beside a pinned one: ENOSPC, loop ended.
mfs pin "${REF[held]}" >/dev/null 2>&1 || fail "pin org/held failed"
begin_run -o quota=4M
[ "$(pyread "$MNT/${REF[held]}")" = "sha256 $(published_sha org/held Held-Q4_K_M.gguf)" ] ||
	fail "the pinned model did not read right"
mfs pin "${REF[fits]}" >/dev/null 2>&1 || fail "pin org/fits failed"
run_loader "quota held by a pinned model, MAP_POPULATE" "$MNT/${REF[fits]}"
[ "$LRC" = 143 ] || fail "quota held: want the loader ended by SIGTERM (143), got $LRC: $LOUT"
# 300 readers (each a new process, so the failure memory does not answer
# them) fail at once: the log collapses them.
n_enospc=0
for _ in $(seq 300); do
	out=$(dd if="$MNT/${REF[fits]}" of=/dev/null bs=1M 2>&1) && continue
	grep -q "No space left on device" <<<"$out" && n_enospc=$((n_enospc + 1))
done
echo "quota held: $n_enospc of 300 read(2) callers got ENOSPC"
[ "$n_enospc" = 300 ] || fail "quota held: only $n_enospc of 300 reads failed with ENOSPC"
end_run "quota held by a pinned model"
grep -q "similar messages left out" "$WORK/run.log" ||
	fail "quota held: 300 failed reads and no 'similar messages left out' line"
[ "$ENDED" -ge 1 ] || fail "quota held: the daemon ended no populate loop"
[ $((READS - 300)) -le 50 ] || fail "quota held: the daemon answered $READS reads (300 of them by dd)"
grep -q "held by the kernel inside mmap(MAP_POPULATE).*No space left on device" "$WORK/run.log" ||
	fail "quota held: the log does not say the loop failed for want of space"
grep -Eq "quota of [0-9.]+ [KMG]iB is full" "$WORK/run.log" ||
	fail "quota held: no log line saying the quota is full"
mfs unpin "${REF[held]}" >/dev/null 2>&1
mfs unpin "${REF[fits]}" >/dev/null 2>&1
chunks_consistent || fail "a chunk in the cache does not match its digest"
finish

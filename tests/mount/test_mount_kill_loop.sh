#!/bin/bash
# test_mount_kill_loop.sh - crash safety of the mount (product.md §6): at
# least 50 kill -9 of the daemon at random moments while three readers read
# random ranges of six models and, under a quota smaller than their total,
# commits evict continuously; some rounds also run `modelfs evict` and
# `modelfs gc` from another process, killed with the daemon.
#
# Readers compare every byte they get with the original file: a wrong byte
# ever served fails the test, as does a read error of a live mount.
# After each kill, with no process of the round alive:
#   - the index passes integrity_check; every `resident` row has its chunk
#     file, of its size; every file under chunks/ hashes to its name; the
#     usage is within the quota and meta.resident_bytes equals it;
#   - nothing verified was lost: every chunk resident when the round's reads
#     began is still resident or its eviction left evidence;
#   - files the killed processes left in tmp/ are aged past the ten-minute
#     staleness limit (touch) and must be gone after the next store open.
# Then `modelfs mount` at the same mount point must come up (product.md §5,
# docs/mount.md: the dead mount does not stay), hold no pin or mount row of a dead process,
# serve one whole file (rotating) with the published sha256, and pass
# `modelfs verify` with no bad chunk. At the end: aged chunk files without a
# row and aged tmp/ files are removed by gc, every file reads right, and no
# chunk was ever found corrupt or missing.
#
# MFS_KILL_LOOPS (default 52) sets the number of rounds.
. "$(dirname "$0")/lib.sh"

LOOPS=${MFS_KILL_LOOPS:-52}
QUOTA=8M
QUOTA_BYTES=$((8 << 20))
NMODELS=6
NREADERS=3

# ---- six models of ~2 MB in 256 KiB chunks: 12 MB against an 8 MB quota ------
declare -a REF WANT FILE ORIG
for k in $(seq 0 $((NMODELS - 1))); do
	make_repo "org/kill$k" "Kill$k-Q4_K_M.gguf" --tensors 5 --tensor-bytes 400000 --seed $((k + 11))
	CHUNK=256K publish_trust "org/kill$k"
	REF[k]=$(mfs add --endpoint "file://$REPO" "org/kill$k" 2>"$WORK/add.err") ||
		die "add org/kill$k: $(cat "$WORK/add.err")"
	FILE[k]="Kill$k-Q4_K_M.gguf"
	ORIG[k]="$REPO/org/kill$k/${FILE[k]}"
	WANT[k]=$(published_sha "org/kill$k" "${FILE[k]}")
	[ "$(sha_of "${ORIG[k]}")" = "${WANT[k]}" ] || die "published digest of ${FILE[k]} is not its sha256"
done
grep -q '"chunk_size":262144' "$REPO/org/kill0/.modelfs/manifest.json" || die "publish ignored the chunk size"

# ---- readers ----------------------------------------------------------------------
# A reader lives for the whole test (python starts slowly on a loaded machine)
# and follows the mounts: it reads random ranges of random files, comparing
# each byte with the original; a wrong byte is a "MISMATCH" line in FAILFILE.
# Every error is a line "ERROR t0 t1 dev what" in ERRFILE: t0 and t1 are the
# times before and after the call, dev the st_dev of the mount the file was
# opened on (0 for open), so the test can tell errors of a live mount from
# those of a killed one. After a good read the reader writes the mount's
# st_dev and the time to READY (at most every 50 ms). It drops the page cache of most files
# it opens (keep_cache would serve repeated reads without the daemon).
cat >"$WORK/reader.py" <<'EOF'
import os, random, sys, time
failfile, errfile, ready, seed = sys.argv[1:5]
pairs = [a.split("|") for a in sys.argv[5:]]
orig = [os.open(o, os.O_RDONLY) for _, o in pairs]
sizes = [os.fstat(fd).st_size for fd in orig]
rnd = random.Random(int(seed))
def log(path, line):
    with open(path, "a") as f:
        f.write(line + "\n")
ready_at = 0
while True:
    k = rnd.randrange(len(pairs))
    path, size = pairs[k][0], sizes[k]
    t0 = time.time()
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        log(errfile, "ERROR %.6f %.6f 0 open %s: %s" % (t0, time.time(), path, e))
        time.sleep(0.02)
        continue
    dev = 0
    try:
        dev = os.fstat(fd).st_dev
        if rnd.random() < 0.7:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        for _ in range(rnd.randint(1, 6)):
            if rnd.random() < 0.15:
                off, n = 0, size                 # the whole file
            else:
                off, n = rnd.randrange(size), rnd.randint(1, 600000)
            t0 = time.time()
            got = os.pread(fd, n, off)
            exp = os.pread(orig[k], n, off)
            if got != exp[:len(got)]:
                bad = next(i for i in range(len(got)) if got[i] != exp[i])
                log(failfile, "MISMATCH %.6f dev %d %s off %d len %d: first wrong byte at %d"
                    " (got %d, want %d)" % (t0, dev, path, off, n, off + bad, got[bad], exp[bad]))
            if len(got) != len(exp):
                log(errfile, "ERROR %.6f %.6f %d short read %s off %d: %d of %d bytes"
                    % (t0, time.time(), dev, path, off, len(got), len(exp)))
                break
            now = time.time()
            if now - ready_at > 0.05:        # st_dev numbers are reused
                ready_at = now
                with open(ready + ".new", "w") as f:
                    f.write("%d %.6f\n" % (dev, now))
                os.rename(ready + ".new", ready)
            time.sleep(0.002)
    except OSError as e:
        log(errfile, "ERROR %.6f %.6f %d read %s: %s" % (t0, time.time(), dev, path, e))
    finally:
        os.close(fd)
EOF

# ---- the store checker --------------------------------------------------------------
# A coprocess (for the same reason): for each line "SNAPSHOT-FILE" it checks
# the store, offline, and answers problem lines, a "STATE ..." line and "END".
# SNAPSHOT-FILE: the evidence id on its first line, then resident digests.
cat >"$WORK/check_store.py" <<'EOF'
import hashlib, os, re, sqlite3, sys
store, quota = sys.argv[1], int(sys.argv[2])
def sha(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
def check(snap):
    bad = []
    db = sqlite3.connect(os.path.join(store, "index.db"))
    try:
        ic = db.execute("PRAGMA integrity_check").fetchall()
        if ic != [("ok",)]:
            bad.append("integrity_check: %r" % (ic,))
        resident = {}
        for d, size in db.execute("SELECT digest, size FROM resident"):
            h = d.hex()
            resident[h] = size
            p = os.path.join(store, "chunks", h[:2], h)
            if not os.path.exists(p):
                bad.append("resident row %s has no chunk file" % h)
            elif os.path.getsize(p) != size:
                bad.append("resident row %s: the file has %d bytes, the row says %d"
                           % (h, os.path.getsize(p), size))
        orphans = 0
        for root, dirs, files in os.walk(os.path.join(store, "chunks")):
            for n in files:
                p = os.path.join(root, n)
                if not re.fullmatch(r"[0-9a-f]{64}", n) or os.path.basename(root) != n[:2]:
                    bad.append("stray file in chunks/: %s" % p)
                elif sha(p) != n:
                    bad.append("chunk file %s does not hash to its name%s"
                               % (p, " (resident)" if n in resident else ""))
                if n not in resident:
                    orphans += 1
        usage = sum(resident.values())
        kept = db.execute("SELECT value FROM meta WHERE key = 'resident_bytes'").fetchall()
        if kept and int(kept[0][0]) != usage:
            bad.append("meta.resident_bytes is %s, the resident rows sum to %d" % (kept[0][0], usage))
        if quota and usage > quota:
            bad.append("usage %d exceeds the quota %d" % (usage, quota))
        if snap:
            lines = open(snap).read().split()
            evid0, before = int(lines[0]), set(lines[1:])
            evidenced = {d.hex() for (d,) in
                         db.execute("SELECT digest FROM evictions WHERE id > ?", (evid0,))}
            for h in sorted(before - set(resident) - evidenced):
                bad.append("chunk %s was resident when the round began; it is gone"
                           " without eviction evidence" % h)
            # the store found a chunk file changed or gone (a kill damages none)
            for i, r, d in db.execute("SELECT id, reason, digest FROM evictions WHERE id > ?"
                                      " AND reason NOT IN ('quota', 'manual', 'disk full')",
                                      (evid0,)):
                print("DAMAGE evidence %d: chunk %s %s" % (i, d.hex(), r))
        cnt = dict(db.execute("SELECT name, value FROM counters"))
        tmp = os.listdir(os.path.join(store, "tmp"))
        state = ("STATE resident=%d usage=%d orphans=%d tmp=%d fetched=%d evicted=%d"
                 % (len(resident), usage, orphans, len(tmp), cnt.get("fetched_bytes", 0),
                    cnt.get("evicted_bytes", 0)))
    except Exception as e:
        bad.append("checker: %r" % (e,))
        state = "STATE ?"
    finally:
        db.close()
    return bad, state
for line in sys.stdin:
    bad, state = check(line.strip())
    for b in bad:
        print(b)
    print(state)
    print("END", flush=True)
EOF
coproc CHECKER { python3 "$WORK/check_store.py" "$STORE" "$QUOTA_BYTES"; }
PIDS+=("$CHECKER_PID")
CHECK_OUT=""
# check_store SNAPSHOT: 0 if the store is consistent; CHECK_OUT gets the
# problems and CHECK_STATE the summary.
check_store() {
	local line
	CHECK_OUT="" CHECK_STATE=""
	echo "$1" >&"${CHECKER[1]}"
	while IFS= read -r -t 120 line <&"${CHECKER[0]}"; do
		case $line in
		END) break ;;
		STATE*) CHECK_STATE=$line ;;
		DAMAGE*) DAMAGE+="round $ROUND: ${line#DAMAGE }"$'\n' ;;
		*) CHECK_OUT+="$line"$'\n' ;;
		esac
	done
	[ "$line" = END ] || die "the store checker did not answer"
	[ -z "$CHECK_OUT" ]
}

snapshot() {
	{
		sqlite3 "$STORE/index.db" "SELECT coalesce(max(id), 0) FROM evictions"
		sqlite3 "$STORE/index.db" "SELECT lower(hex(digest)) FROM resident"
	} >"$1"
}

# Drops pid $1 from PIDS (a dead process must not be signalled at cleanup:
# its pid may be someone else's by then).
forget_pid() {
	local p keep=()
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

# Starts the daemon; 0 once it serves $MNT, 1 if it exits or is not ready
# in 10 s (its messages are in daemon.log).
new_mount() {
	"$MODELFS" --store "$STORE" mount "$MNT" -f -o "quota=$QUOTA" >>"$WORK/daemon.log" 2>&1 &
	DAEMON=$!
	PIDS+=("$DAEMON")
	for _ in $(seq 100); do
		mountpoint -q "$MNT" && return 0
		kill -0 "$DAEMON" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$DAEMON" 2>/dev/null
	wait "$DAEMON" 2>/dev/null
	forget_pid "$DAEMON"
	DAEMON=""
	return 1
}

# The mount after a kill. docs/mount.md: the auto_unmount watcher removes the
# mount of a daemon that died, and when it loses its race with the kernel the
# next `modelfs mount` detaches the dead mount itself; either way the next
# mount works. When it does not, that is counted (a failure at the end), the
# dead mount is removed by hand and the loop goes on.
mount_after_kill() {
	new_mount && return 0
	STALE=$((STALE + 1))
	STALE_ROUNDS+=" $ROUND"
	echo "round $ROUND: modelfs mount failed after the kill:" \
		"$(tail -2 "$WORK/daemon.log" | tr '\n' ' ')" >&2
	fusermount3 -u -z "$MNT" 2>/dev/null
	new_mount || round_die "modelfs mount fails even after fusermount3 -u -z"
}

in_mounts() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

# The evictor runs in its own process group so that it and its current
# modelfs child are killed together.
EVICTOR=""
stop_evictor() {
	[ -n "$EVICTOR" ] || return 0
	kill -9 -- "-$EVICTOR" 2>/dev/null
	wait "$EVICTOR" 2>/dev/null
	forget_pid "$EVICTOR"
	EVICTOR=""
}
READERS=()
stop_readers() {
	local p
	for p in "${READERS[@]}"; do
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
		forget_pid "$p"
	done
	READERS=()
}
trap 'stop_evictor; stop_readers; cleanup' EXIT

ROUND=0
round_report() {
	echo "--- round $ROUND: daemon log of this round" >&2
	sed -n "/^=== round $ROUND\$/,\$p" "$WORK/daemon.log" | tail -40 >&2
	echo "--- store state" >&2
	mfs status 2>&1 | sed 's/^/  /' >&2
	echo "  tmp/: $(ls "$STORE/tmp" | wc -l) file(s); quarantine/: $(ls "$STORE/quarantine" | wc -l)" >&2
	sqlite3 "$STORE/index.db" "SELECT 'pin', pid, artifact_id, count FROM pins;
		SELECT 'mount', pid, mountpoint FROM mounts;
		SELECT 'eviction', id, reason, bytes, lower(hex(digest)) FROM evictions
		WHERE reason NOT IN ('quota', 'manual', 'disk full') ORDER BY id DESC LIMIT 5" 2>&1 | sed 's/^/  /' >&2
	[ -s "$WORK/reader.fail" ] && { echo "--- reader failures" >&2; head -20 "$WORK/reader.fail" >&2; }
	[ -s "$WORK/reader.err" ] && { echo "--- reader errors (last)" >&2; tail -10 "$WORK/reader.err" >&2; }
	return 0
}
round_die() {
	round_report
	die "round $ROUND: $*"
}

# ---- the loop ---------------------------------------------------------------------
: >"$WORK/reader.fail"
: >"$WORK/reader.err"
DAMAGE="" STALE=0 STALE_ROUNDS="" KILLS=0 EVICTOR_ROUNDS=0 PREV_DEAD="" AGED=""
while [ "$ROUND" -lt "$LOOPS" ]; do
	ROUND=$((ROUND + 1))
	echo "=== round $ROUND" >>"$WORK/daemon.log"
	# Readers (from round 2 on) stay stopped until the checks are done.
	for p in "${READERS[@]}"; do kill -STOP "$p"; done
	if [ "$ROUND" -eq 1 ]; then
		new_mount || die "the first mount failed"
	else
		mount_after_kill
	fi
	live_from=$(date +%s.%N)
	dev=$(stat -c %d "$MNT")

	# A new mount after a kill: the store open removed the aged tmp/ files,
	# no row of a dead process survives, the bytes are right, verify agrees.
	for f in $AGED; do
		[ -e "$STORE/tmp/$f" ] && fail "round $ROUND: stale tmp/$f (aged past ten minutes) survived the store open"
	done
	n=$(sqlite3 "$STORE/index.db" "SELECT count(*) FROM pins WHERE pid <> $DAEMON")
	[ "$n" -eq 0 ] || fail "round $ROUND: $n pin row(s) of dead processes after the new mount"
	n=$(sqlite3 "$STORE/index.db" "SELECT count(*) FROM mounts WHERE pid <> $DAEMON")
	[ "$n" -eq 0 ] || fail "round $ROUND: $n mount row(s) of dead daemons after the new mount"
	k=$((ROUND % NMODELS))
	got=$(sha_of "$MNT/${REF[k]}" 2>"$WORK/sha.err") || got="error: $(cat "$WORK/sha.err")"
	[ "$got" = "${WANT[k]}" ] ||
		fail "round $ROUND: sha256 of ${FILE[k]} through the new mount is $got, published ${WANT[k]}"
	mfs verify >"$WORK/verify.out" 2>&1
	rc=$?
	[ "$rc" -eq 0 ] || fail "round $ROUND: modelfs verify exited $rc: $(cat "$WORK/verify.out")"
	grep -q " 0 bad chunk(s), 0 unrepaired" "$WORK/verify.out" ||
		fail "round $ROUND: verify found damage: $(cat "$WORK/verify.out")"
	[ "$FAILS" -eq 0 ] ||
		round_die "the store after the kill of round $((ROUND - 1)) (daemon $PREV_DEAD) is not right"

	# Reads, and sometimes an evictor, then a kill at a random moment.
	snapshot "$WORK/snap"
	if [ "${#READERS[@]}" -eq 0 ]; then
		args=()
		for k in $(seq 0 $((NMODELS - 1))); do args+=("$MNT/${REF[k]}|${ORIG[k]}"); done
		for r in $(seq "$NREADERS"); do
			python3 "$WORK/reader.py" "$WORK/reader.fail" "$WORK/reader.err" "$WORK/ready.$r" \
				"$r" "${args[@]}" 2>>"$WORK/reader.stderr" &
			READERS+=($!)
			PIDS+=($!)
		done
	fi
	for p in "${READERS[@]}"; do kill -CONT "$p"; done
	EVICTOR_ON=""
	if [ $((RANDOM % 3)) -eq 0 ]; then
		EVICTOR_ON=", with an evictor"
		EVICTOR_ROUNDS=$((EVICTOR_ROUNDS + 1))
		setsid bash -c '
			m=$1 st=$2
			shift 2
			refs=("$@")
			while :; do
				"$m" --store "$st" evict "${refs[RANDOM % ${#refs[@]}]}"
				[ $((RANDOM % 2)) -eq 0 ] && "$m" --store "$st" gc
				sleep 0.0$((RANDOM % 5))
			done' evictor "$MODELFS" "$STORE" "${REF[@]}" >>"$WORK/evictor.log" 2>&1 &
		EVICTOR=$!
		PIDS+=("$EVICTOR")
	fi
	# every reader has read from this mount (at most 20 s on a loaded machine)
	for _ in $(seq 400); do
		ready=0
		for r in $(seq "$NREADERS"); do
			awk -v d="$dev" -v a="$live_from" '$1 == d && $2 + 0 > a + 0 { ok = 1 } END { exit !ok }' \
				"$WORK/ready.$r" 2>/dev/null && ready=$((ready + 1))
		done
		[ "$ready" -eq "$NREADERS" ] && break
		sleep 0.05
	done
	[ "$ready" -ge 1 ] || round_die "no reader got a byte from the new mount in 20 s"
	delay_ms=$((RANDOM % 600))
	sleep "$(printf '0.%03d' "$delay_ms")"

	dead=$DAEMON
	kill_at=$(date +%s.%N)
	if kill -9 "$dead" 2>/dev/null; then
		wait "$dead" 2>/dev/null
		[ $? -eq 137 ] && KILLS=$((KILLS + 1))
	else
		fail "round $ROUND: the daemon was gone before the kill"
	fi
	forget_pid "$dead"
	DAEMON=""
	PREV_DEAD=$dead
	[ $((RANDOM % 2)) -eq 0 ] && stop_evictor
	# auto_unmount: the daemon's fusermount3 removes the mount when it dies
	# (mountpoint -q says "no" for a dead mount too: look at /proc/mounts).
	# A mount still there after 3 s is left for the next `modelfs mount`.
	gone=""
	for i in $(seq 60); do
		if ! in_mounts "$MNT" && ls "$MNT" >/dev/null 2>&1; then gone="unmounted in $((i * 50)) ms"; break; fi
		sleep 0.05
	done
	[ -n "$gone" ] || gone="mount still there after 3 s: $(ls "$MNT" 2>&1 | sed 's/.*: //')"
	stop_evictor
	for p in "${READERS[@]}"; do kill -STOP "$p"; done

	# No wrong byte, no error of a call made on this live mount that failed
	# before the kill.
	[ -s "$WORK/reader.fail" ] && fail "round $ROUND: a reader was served wrong bytes"
	early=$(awk -v a="$live_from" -v b="$kill_at" -v d="$dev" \
		'$2 + 0 >= a + 0 && $3 + 0 < b + 0 && ($4 == d || $4 == 0)' "$WORK/reader.err")
	[ -z "$early" ] || fail "round $ROUND: read errors from the live mount: $early"

	# The store as the kill left it.
	damage_before=$DAMAGE
	check_store "$WORK/snap" || fail "round $ROUND: the store after the kill is inconsistent: $CHECK_OUT"
	if [ "$DAMAGE" != "$damage_before" ]; then
		echo "round $ROUND: the store found damage: ${DAMAGE#"$damage_before"}" >&2
		sed -n "/^=== round $ROUND\$/,\$p" "$WORK/daemon.log" | grep -Ei "warning|error" >&2
	fi
	echo "round $ROUND: killed daemon $dead $delay_ms ms after $ready reader(s) got bytes$EVICTOR_ON ($gone); $CHECK_STATE"
	[ "$FAILS" -eq 0 ] || round_die "the kill left a bad store"
	# What the killed processes left in tmp/ is aged past the staleness limit:
	# the next store open must remove it.
	AGED=$(ls "$STORE/tmp")
	for f in $AGED; do touch -d '-11 minutes' "$STORE/tmp/$f"; done
done
stop_readers
echo "kills: $KILLS in $ROUND rounds ($EVICTOR_ROUNDS with an evictor);" \
	"reader errors of killed mounts: $(wc -l <"$WORK/reader.err")"
[ "$KILLS" -ge 50 ] || fail "only $KILLS kills of a live daemon, at least 50 are needed"

# ---- after the last kill -----------------------------------------------------------
# Chunk files without a row (a kill between rename and index, or between an
# eviction and its unlink) and tmp/ files, aged, are removed by gc.
orphans=$(python3 - "$STORE" <<'EOF'
import os, sqlite3, sys
store = sys.argv[1]
db = sqlite3.connect(os.path.join(store, "index.db"))
res = {d.hex() for (d,) in db.execute("SELECT digest FROM resident")}
for root, _, files in os.walk(os.path.join(store, "chunks")):
    for n in files:
        if n not in res:
            print(os.path.join(root, n))
EOF
)
for f in $orphans; do touch -d '-11 minutes' "$f"; done
for f in "$STORE"/tmp/*; do [ -e "$f" ] && touch -d '-11 minutes' "$f"; done
mfs gc >"$WORK/gc.out" 2>&1 || fail "gc after the kills: $(cat "$WORK/gc.out")"
for f in $orphans; do
	[ -e "$f" ] && fail "an aged chunk file without a resident row survived gc: $f"
done
[ -z "$(ls "$STORE/tmp")" ] || fail "tmp/ is not empty after gc: $(ls "$STORE/tmp")"
echo "aged chunk files without a row removed by gc: $(echo "$orphans" | grep -c .)"

echo "=== final mount" >>"$WORK/daemon.log"
ROUND=final
mount_after_kill
[ "$STALE" -eq 0 ] || fail "after $STALE of $KILLS kills (the ones before rounds$STALE_ROUNDS)" \
	"the dead mount stayed ('Transport endpoint is not connected') and modelfs mount failed"
n=$(sqlite3 "$STORE/index.db" "SELECT count(*) FROM pins WHERE pid <> $DAEMON")
[ "$n" -eq 0 ] || fail "$n pin row(s) of dead processes after the final mount"
for k in $(seq 0 $((NMODELS - 1))); do
	[ "$(sha_of "$MNT/${REF[k]}")" = "${WANT[k]}" ] || fail "final: sha256 of ${FILE[k]} differs"
done
mfs verify >"$WORK/verify.out" 2>&1 || fail "final verify exited $?: $(cat "$WORK/verify.out")"
grep -q " 0 bad chunk(s), 0 unrepaired" "$WORK/verify.out" || fail "final verify: $(cat "$WORK/verify.out")"
unmount "$MNT"
check_store "" || fail "the final store is inconsistent: $CHECK_OUT"
echo "final: $CHECK_STATE"
n=$(sqlite3 "$STORE/index.db" "SELECT count(*) FROM pins")
[ "$n" -eq 0 ] || fail "$n pin row(s) left after a clean unmount"
[ -s "$WORK/reader.fail" ] && fail "wrong bytes were served: $(head -5 "$WORK/reader.fail")"
# A kill damages no chunk: nothing was ever found corrupt or missing.
bad=$(sqlite3 "$STORE/index.db" "SELECT id, reason, lower(hex(digest)), datetime(at, 'unixepoch')
	FROM evictions WHERE reason NOT IN ('quota', 'manual', 'disk full')")
[ -z "$bad" ] || fail "chunks were found corrupt or missing during the run: $bad"
n=$(sqlite3 "$STORE/index.db" "SELECT coalesce(sum(value), 0) FROM counters WHERE name = 'corrupt_chunks'")
[ "$n" -eq 0 ] || fail "corrupt_chunks is $n"
check_log
finish

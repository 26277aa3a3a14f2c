#!/bin/bash
# test_mount_disk_full.sh - a store on a small tmpfs that fills up (product.md
# §6 "Disk full"). The contract: a read that needs space that is not there
# fails with ENOSPC (never EIO) and the daemon log says the disk is full;
# resident files keep reading, from open descriptors and from new opens;
# status, ls and verify keep working; nothing under the store is corrupt or
# half-written (chunk files hash to their names, no resident row without its
# file, tmp/ empty, index integrity_check ok, no pin left behind); and when
# space returns the same read succeeds with the right bytes, without a
# remount, from the same daemon.
#
#   1. The store's own chunks fill the disk during a read (the other models
#      held open, so evicting cannot make enough room); recovery by growing
#      the tmpfs.
#   2. A filler file takes every free block while the daemon is idle (the
#      index's WAL checkpointed to nothing first, so SQLite writes fail too):
#      a first open of a resident model (ENOSPC: its pin cannot be
#      recorded), a read that needs space, a last
#      close, 'modelfs pin' and 'modelfs add' of a new model (a clear error,
#      nothing half-admitted); recovery by deleting the filler.
. "$(dirname "$0")/lib.sh"

SMALL="$WORK/small"
mkdir -p "$SMALL"
mount -t tmpfs -o size=12m,mode=0755 tmpfs "$SMALL" 2>/dev/null || skip "cannot mount a tmpfs"
# Ours first (lazily: the daemon may still hold files there), then lib.sh's.
trap 'umount -l "$SMALL" 2>/dev/null; cleanup' EXIT
STORE="$SMALL/store"

# Three models of about 4, 4 and 6 MB (distinct bytes, so no chunk is
# shared) and E of 0.5 MB: 14.5 MB on a 12 MB disk. D (0.5 MB) is added while
# the disk is full.
make_repo org/a A-Q4_K_M.gguf --tensors 4 --tensor-bytes 1000000 --seed 101
make_repo org/b B-Q4_K_M.gguf --tensors 4 --tensor-bytes 1000000 --seed 202
make_repo org/c C-Q4_K_M.gguf --tensors 6 --tensor-bytes 1000000 --seed 303
make_repo org/d D-Q4_K_M.gguf --tensors 1 --tensor-bytes 500000 --seed 404
make_repo org/e E-Q4_K_M.gguf --tensors 1 --tensor-bytes 500000 --seed 505
for r in a b c d e; do publish_trust org/$r; done
declare -A REF WANT
for r in a b c e; do
	REF[$r]=$(mfs add --endpoint "file://$REPO" org/$r 2>"$WORK/add.err") ||
		die "add org/$r failed: $(cat "$WORK/add.err")"
	WANT[$r]=$(published_sha org/$r "${r^^}-Q4_K_M.gguf")
done
WANT[d]=$(published_sha org/d D-Q4_K_M.gguf)


# expect_bytes LABEL r FILE|fd:N: the whole file reads, with the published bytes.
expect_bytes() {
	local out
	out=$(pyread "$3")
	case $out in
	"sha256 ${WANT[$2]}") ;;
	sha256*) fail "$1: org/$2 reads with the wrong bytes" ;;
	*) fail "$1: reading org/$2 failed: $out ($(errname "$out"))" ;;
	esac
}

# expect_enospc LABEL r FILE: opening or reading fails with ENOSPC.
expect_enospc() {
	local out
	out=$(pyread "$3")
	case $out in
	"errno 28 "*) echo "$1: org/$2 -> ENOSPC at ${out##* }" ;;
	"sha256 ${WANT[$2]}") fail "$1: reading org/$2 succeeded on a full disk (expected ENOSPC)" ;;
	sha256*) fail "$1: org/$2 read WRONG BYTES on a full disk" ;;
	*) fail "$1: reading org/$2 failed with $out ($(errname "$out")), not ENOSPC" ;;
	esac
}

errname() {
	python3 -c 'import errno, sys; w = sys.argv[1].split(); print(errno.errorcode.get(int(w[1]), "?") if len(w) > 1 and w[0] == "errno" else "-")' "$1"
}

# How a message says there is no space (also an allow-list for check_log).
FULL_RE="[Nn]o space left|is full|[Dd]isk full|[Oo]ut of space"

# New daemon log lines since mark_log.
mark_log() { LOGMARK=$(wc -l <"$WORK/daemon.log"); }
new_log() { tail -n +$((LOGMARK + 1)) "$WORK/daemon.log"; }

# The log after a failure for lack of space says so, and never "I/O error".
log_says_full() {
	local lines
	lines=$(new_log)
	grep -Eqi "$FULL_RE" <<<"$lines" ||
		fail "$1: the daemon log does not say the disk is full: ${lines:-(nothing)}"
	! grep -Eqi "input/output error" <<<"$lines" ||
		fail "$1: the daemon log reports an I/O error: $(grep -i 'input/output' <<<"$lines")"
}

daemon_alive() {
	kill -0 "$DAEMON" 2>/dev/null || die "$1: the daemon died"
	mountpoint -q "$MNT" || die "$1: the mount is gone"
	ls "$MNT/org" >/dev/null 2>"$WORK/ls.err" || fail "$1: ls of the mount failed: $(cat "$WORK/ls.err")"
}

# No file in tmp/ (a failed write is removed at once; waits for background
# prefetch to settle), every chunk file hashes to its name, every resident
# row has its file with its size, and the index passes integrity_check.
store_sane() {
	local left
	for _ in $(seq 50); do
		left=$(find "$STORE/tmp" -type f)
		[ -z "$left" ] && break
		sleep 0.1
	done
	[ -z "$left" ] || fail "$1: files left in tmp/: $left"
	chunks_consistent || fail "$1: a chunk file does not match its name"
	local hex size missing=""
	while IFS='|' read -r hex size; do
		[ -n "$hex" ] || continue
		hex=${hex,,}
		[ "$(stat -c %s "$STORE/chunks/${hex:0:2}/$hex" 2>/dev/null)" = "$size" ] ||
			missing+=" ${hex:0:16}"
	done < <(sqlite3 "$STORE/index.db" "SELECT hex(digest), size FROM resident")
	[ -z "$missing" ] || fail "$1: resident rows without their chunk file:$missing"
	local ic
	ic=$(sqlite3 "$STORE/index.db" "PRAGMA integrity_check" 2>&1)
	[ "$ic" = ok ] || fail "$1: index integrity_check: $ic"
}

# status, ls and verify work and agree with what is installed.
commands_work() {
	local label=$1 r
	shift
	mfs status >"$WORK/status.out" 2>&1 || fail "$label: modelfs status failed: $(cat "$WORK/status.out")"
	mfs ls >"$WORK/ls.out" 2>&1 || fail "$label: modelfs ls failed: $(cat "$WORK/ls.out")"
	for r in "$@"; do
		grep -qF "${REF[$r]}" "$WORK/ls.out" || fail "$label: modelfs ls lacks org/$r"
	done
	mfs verify >"$WORK/verify.out" 2>&1 || fail "$label: modelfs verify failed: $(cat "$WORK/verify.out")"
	grep -q " 0 bad chunk" "$WORK/verify.out" || fail "$label: modelfs verify: $(cat "$WORK/verify.out")"
}

resident_chunks() {
	sqlite3 "$STORE/index.db" "SELECT count(DISTINCT r.digest) FROM resident r
		JOIN chunks c ON c.digest = r.digest JOIN artifact_files af ON af.file_id = c.file_id
		JOIN artifacts a ON a.id = af.artifact_id WHERE a.canonical_ref = '${REF[$1]}'"
}

installed() { mfs ls 2>/dev/null | awk 'NR > 1 { print $NF }' | sort; }

mount_fg
for r in a b c e; do
	[ -f "$MNT/${REF[$r]}" ] || die "$MNT/${REF[$r]} missing"
done

# ---- 1. the store's own chunks fill the disk ---------------------------------
expect_bytes "cold" a "$MNT/${REF[a]}"
expect_bytes "cold" b "$MNT/${REF[b]}"
expect_bytes "cold" e "$MNT/${REF[e]}"
# A and B stay open: nothing the store could evict to make room for C.
exec 3<"$MNT/${REF[a]}" 4<"$MNT/${REF[b]}"
mark_log
expect_enospc "full" c "$MNT/${REF[c]}"
log_says_full "full"
echo "daemon log while full:"
new_log | sed 's/^/  | /' | head -8
daemon_alive "full"
expect_bytes "full, open before" a fd:3
expect_bytes "full, open before" b fd:4
expect_bytes "full, another open" a "$MNT/${REF[a]}"
commands_work "full" a b c e
store_sane "full"

# Space returns: the tmpfs grows under the running mount.
mount -o remount,size=64m "$SMALL" || die "cannot grow the tmpfs"
expect_bytes "space back" c "$MNT/${REF[c]}"
daemon_alive "space back"
store_sane "space back"
exec 3<&- 4<&-

# ---- 2. a filler takes every block while the daemon is idle -----------------
mfs evict "${REF[c]}" >/dev/null 2>"$WORK/evict.err" || die "evict org/c failed: $(cat "$WORK/evict.err")"
[ "$(resident_chunks c)" -eq 0 ] || fail "org/c still has resident chunks after evict"
mount -o remount,size=16m "$SMALL" || die "cannot shrink the tmpfs"
exec 3<"$MNT/${REF[a]}" 4<"$MNT/${REF[b]}"
# E resident (the store may have evicted it to make room for C above).
expect_bytes "idle" e "$MNT/${REF[e]}"
[ "$(resident_chunks e)" -ge 1 ] || fail "org/e is not resident after a full read"
store_sane "idle"
BEFORE=$(installed)
N_RECORDS=$(find "$STORE/records" -type f | wc -l)
N_MANIFESTS=$(find "$STORE/manifests" -type f | wc -l)
DPID=$DAEMON
# An empty WAL, so that any write to the index has to grow a file.
sqlite3 "$STORE/index.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null ||
	fail "cannot checkpoint the index"
dd if=/dev/zero of="$SMALL/filler" bs=4k 2>/dev/null
[ "$(stat -f -c %a "$SMALL")" -eq 0 ] || die "the filler left $(stat -f -c %a "$SMALL") free blocks"
echo "disk full: filler of $(stat -c %s "$SMALL/filler") bytes, WAL $(stat -c %s "$STORE/index.db-wal" 2>/dev/null || echo none)"

mark_log
# E is resident and not open. A first open records a pin in the index, so
# that no process evicts what is open; with not even the index writable it
# fails, with ENOSPC (not EIO), and works again once space returns (below).
expect_enospc "filler, first open" e "$MNT/${REF[e]}"
expect_enospc "filler" c "$MNT/${REF[c]}"
log_says_full "filler"
echo "daemon log while the filler is there:"
new_log | sed 's/^/  | /' | head -8
daemon_alive "filler"
expect_bytes "filler, open before" a fd:3
expect_bytes "filler, open before" b fd:4
expect_bytes "filler, another open" a "$MNT/${REF[a]}"
# B's last close on the full disk (its pin row has to go).
exec 4<&-
commands_work "filler" a b c e
store_sane "filler"

# A write to the index on the full disk fails clearly, or succeeds; never
# anything in between.
if mfs pin "${REF[b]}" >"$WORK/pin.out" 2>&1; then
	echo "note: modelfs pin succeeded on the full disk"
	PINNED=1
else
	PINNED=0
	grep -Eqi "$FULL_RE" "$WORK/pin.out" ||
		fail "filler: modelfs pin failed without saying the disk is full: $(cat "$WORK/pin.out")"
	echo "pin on the full disk: $(cat "$WORK/pin.out")"
fi

# 'modelfs add' on the full disk: a clear error, nothing half-admitted.
if mfs add --endpoint "file://$REPO" org/d >"$WORK/add-d.out" 2>"$WORK/add-d.err"; then
	fail "filler: add org/d succeeded on a full disk: $(cat "$WORK/add-d.out")"
else
	echo "add on the full disk: $(cat "$WORK/add-d.err")"
	grep -Eqi "$FULL_RE" "$WORK/add-d.err" ||
		fail "filler: add org/d failed without saying the disk is full: $(cat "$WORK/add-d.err")"
	grep -Eqi "input/output error|corrupt" "$WORK/add-d.err" &&
		fail "filler: add org/d reported: $(cat "$WORK/add-d.err")"
fi
[ "$(installed)" = "$BEFORE" ] || fail "filler: modelfs ls changed after a failed add: $(installed)"
[ "$(find "$STORE/records" -type f | wc -l)" -eq "$N_RECORDS" ] ||
	fail "filler: the failed add left a record file (a rebuild would admit it)"
[ "$(find "$STORE/manifests" -type f | wc -l)" -eq "$N_MANIFESTS" ] ||
	echo "note: the failed add left a file in manifests/"
store_sane "filler, after add"
daemon_alive "filler, after add"

# Space returns: the filler goes. Same daemon, same mount.
rm -f "$SMALL/filler"
kill -0 "$DPID" 2>/dev/null || die "the daemon did not survive the full disk"
expect_bytes "filler gone" c "$MNT/${REF[c]}"
expect_bytes "filler gone" a "$MNT/${REF[a]}"
expect_bytes "filler gone" b "$MNT/${REF[b]}"
exec 3<&-
# Every file is closed: no pin of the daemon is left behind (a pin that could
# not be removed while the disk was full would keep B from ever being evicted).
pins() { sqlite3 "$STORE/index.db" "SELECT count(*) FROM pins WHERE pid = $DAEMON"; }
for _ in $(seq 50); do [ "$(pins)" -eq 0 ] && break; sleep 0.1; done
[ "$(pins)" -eq 0 ] || fail "pin rows left after every file was closed: $(sqlite3 "$STORE/index.db" \
	"SELECT a.canonical_ref, p.count FROM pins p JOIN artifacts a ON a.id = p.artifact_id WHERE p.pid = $DAEMON")"
[ "$PINNED" = 1 ] && { mfs unpin "${REF[b]}" >/dev/null 2>&1 || fail "unpin org/b failed"; }
REF[d]=$(mfs add --endpoint "file://$REPO" org/d 2>"$WORK/add.err") ||
	fail "add org/d after space returned failed: $(cat "$WORK/add.err")"
if [ -n "${REF[d]}" ]; then
	seen=0
	for _ in $(seq 50); do
		[ -f "$MNT/${REF[d]}" ] && { seen=1; break; }
		sleep 0.1
	done
	[ "$seen" = 1 ] || fail "org/d did not appear under the mount"
	expect_bytes "filler gone" d "$MNT/${REF[d]}"
fi
expect_bytes "filler gone" e "$MNT/${REF[e]}"
commands_work "filler gone" a b c d e
[ "$(mfs ls 2>/dev/null | awk 'NR > 1' | wc -l)" -eq 5 ] || fail "modelfs ls: $(mfs ls 2>&1)"
echo "evictions (artifact|reason|chunks|bytes):"
sqlite3 "$STORE/index.db" "SELECT coalesce(substr(artifact, 1, 5), '-'), reason, count(*), sum(bytes)
	FROM evictions GROUP BY 1, 2 ORDER BY min(id)" | sed 's/^/  | /'
bad=$(sqlite3 "$STORE/index.db" "SELECT count(*) FROM evictions WHERE reason IN ('corrupt', 'missing')")
[ "$bad" -eq 0 ] || fail "$bad chunk(s) recorded corrupt or missing"

unmount "$MNT"
store_sane "end"
check_log "$FULL_RE"
finish

#!/bin/bash
# test_mount_index_lost.sh - the store's index lost under a mount (issue 5:
# "The database deleted: rebuilt, and the mount serves the same files").
#
#   a. index.db (with -wal and -shm) deleted while unmounted; then mount.
#   b. index.db garbled (its first 4 KiB overwritten) while unmounted; then
#      mount: the bad file is set aside in quarantine/.
#   c. index.db, -wal and -shm deleted while mounted, a file held open: the
#      daemon notices within seconds that its index is gone, rebuilds it and
#      registers its mount and open pins in it again.
#
# Each time: the index is rebuilt from records/ and chunks/ (docs/store.md
# "Rebuild"); the mount shows the same tree (`ls -R`, and names, types, sizes,
# modes and link targets) and every file reads with its published sha256;
# artifact and file ids are the ones they were; nothing is fetched again (the
# test hub's CDN counts every range); the rebuilt rows carry no stamp, so each
# chunk is hashed once at its first read and stamped then; the user's pin and
# the quota survive; `modelfs verify` finds nothing to repair. In (c) also:
# the open descriptor keeps reading right, `ls`, `status` and `verify` from
# other processes agree with the mount, the open file's artifact is pinned
# in the new index by the daemon's pid, so `modelfs evict` of it is refused
# (busy) until it is closed, and allowed then.
. "$(dirname "$0")/lib.sh"

CHUNK=1M
start_hub
make_repo org/split Split-Q4_K_M.gguf --tensors 6 --tensor-bytes 1500000 --split 3 --seed 31
make_repo org/single Single-Q8_0.gguf --tensors 4 --tensor-bytes 1500000 --seed 32
for r in org/split org/single; do
	publish_trust "$r"
	hub_put "$r"
done
REF1=$(mfs add --endpoint "$HUB" org/split 2>"$WORK/add.err") || die "add org/split: $(cat "$WORK/add.err")"
REF2=$(mfs add --endpoint "$HUB" org/single 2>"$WORK/add.err") || die "add org/single: $(cat "$WORK/add.err")"
DIR1=$(dirname "$MNT/$REF1")
SHARD2="$DIR1/Split-Q4_K_M-00002-of-00003.gguf"




# read_all LABEL: every file under the mount reads with its published sha256.
read_all() {
	local f rel n=0 out
	for f in "$DIR1"/*.gguf; do
		out=$(pyread "$f")
		[ "$out" = "sha256 $(published_sha org/split "$(basename "$f")")" ] ||
			fail "$1: $(basename "$f") reads as '$out'"
		n=$((n + 1))
	done
	out=$(pyread "$MNT/$REF2")
	[ "$out" = "sha256 $(published_sha org/single Single-Q8_0.gguf)" ] ||
		fail "$1: Single-Q8_0.gguf reads as '$out'"
	[ "$n" -eq 3 ] || fail "$1: $n shards of org/split under the mount, expected 3"
}

# snap DIR: what must survive the index: the tree as the mount shows it, the
# ids, the inventory as `ls --json` shows it, the quota.
snap() {
	mkdir -p "$1"
	(cd "$MNT" && ls -R) >"$1/ls-R" 2>&1
	(cd "$MNT" && find . -printf '%p %y %s %m %l\n' | sort) >"$1/find" 2>&1
	q "SELECT id, canonical_ref, pinned FROM artifacts ORDER BY canonical_ref" >"$1/artifacts"
	q "SELECT id, org, name, commit_id, path, size, sha256 FROM files ORDER BY org, name, path" >"$1/files"
	mfs ls --json >"$1/ls.json" 2>"$1/ls.err" || echo "ls failed: $(cat "$1/ls.err")" >"$1/ls.json"
	python3 - "$1/ls.json" >"$1/inventory" <<'EOF' 2>&1
import json, sys
for a in sorted(json.load(open(sys.argv[1])), key=lambda a: a["canonical_ref"]):
    print(a["canonical_ref"], a["id"], a["pinned"], a["state"], a["size"], a["resident_bytes"],
          a["trust"], a["identity"], a["commit"])
    for f in a["files"]:
        print("  ", f["path"], f["sha256"], f["size"], f["resident_bytes"])
EOF
	mfs status --json >"$1/status.json" 2>&1
	python3 -c 'import json, sys; q = json.load(open(sys.argv[1]))["quota"]; print(q["bytes"], q["high_pct"], q["low_pct"])' \
		"$1/status.json" >"$1/quota" 2>&1
}

# same LABEL DIR-A DIR-B: the snapshots agree.
same() {
	local what
	for what in ls-R find artifacts files inventory quota; do
		cmp -s "$2/$what" "$3/$what" ||
			fail "$1: $what differs: $(diff "$2/$what" "$3/$what" | head -20 | tr '\n' '|')"
	done
}

verify_clean() {
	local out rc
	out=$(mfs verify 2>&1) && rc=0 || rc=$?
	[ "$rc" -eq 0 ] || fail "$1: verify exited $rc: $out"
	grep -qE "verified 4 file\(s\).* 0 bad chunk\(s\), 0 unrepaired" <<<"$out" ||
		fail "$1: verify: $out"
}

chunk_files() { find "$STORE/chunks" -type f | wc -l; }
quarantined_chunks() { find "$STORE/quarantine" -type f ! -name 'index.db*' | wc -l; }

# fresh LABEL: the index was just rebuilt (nothing read since): it is sound,
# it has a row for every chunk file, and no row carries a stamp yet.
fresh() {
	local label=$1 rows unstamped files
	[ "$(q 'PRAGMA integrity_check')" = ok ] || fail "$label: the rebuilt index fails integrity_check"
	rows=$(q "SELECT count(*) FROM resident")
	unstamped=$(q "SELECT count(*) FROM resident WHERE ino IS NULL OR ctime_ns IS NULL")
	files=$(chunk_files)
	[ "$rows" -eq "$files" ] || fail "$label: $rows resident rows for $files chunk files"
	[ "$unstamped" -eq "$rows" ] ||
		fail "$label: $((rows - unstamped)) of $rows rebuilt chunk rows carry a stamp before any read"
}

# serves LABEL: the mount and the commands after a rebuild agree with the
# snapshot taken before the loss ($WORK/s0), every file reads right without
# a byte fetched (the hub's counters were reset before the loss), and each
# chunk, hashed at that first read, is stamped now.
serves() {
	local label=$1 n unstamped
	snap "$WORK/s.$label"
	same "$label" "$WORK/s0" "$WORK/s.$label"
	read_all "$label"
	n=$(hub_ranges "*" | wc -l)
	[ "$n" -eq 0 ] || fail "$label: $n range requests reached the CDN; resident chunks were fetched again"
	unstamped=$(q "SELECT count(*) FROM resident r WHERE (ino IS NULL OR ctime_ns IS NULL)
		AND EXISTS (SELECT 1 FROM chunks c WHERE c.digest = r.digest)")
	[ "$unstamped" -eq 0 ] || fail "$label: $unstamped chunks still unstamped after every file was read"
	[ "$(quarantined_chunks)" -eq 0 ] || fail "$label: chunks were quarantined: $(ls "$STORE/quarantine")"
	verify_clean "$label"
}

# ---- the state that must survive -------------------------------------------------
mount_fg
read_all "cold"
mfs pin "$REF2" >/dev/null || fail "pin $REF2 failed"
mfs gc --quota 300M --high 95 --low 60 >/dev/null || fail "gc --quota failed"
[ "$(q "SELECT pinned FROM artifacts WHERE canonical_ref = '$REF2'")" = 1 ] || fail "pin did not take"
[ "$(q "SELECT value FROM meta WHERE key = 'quota_bytes'")" = $((300 << 20)) ] || fail "quota did not take"
snap "$WORK/s0"
grep -q "^300 .*95 60$\|^$((300 << 20)) 95 60$" "$WORK/s0/quota" || fail "quota before: $(cat "$WORK/s0/quota")"
grep -q " True active " "$WORK/s0/inventory" || fail "no pinned artifact in the inventory: $(cat "$WORK/s0/inventory")"
grep -q "Split-Q4_K_M-00003-of-00003.gguf" "$WORK/s0/ls-R" || die "tree before: $(cat "$WORK/s0/ls-R")"
verify_clean "before"

# ---- a: deleted while unmounted ---------------------------------------------------
unmount "$MNT"
rm -f "$STORE/index.db" "$STORE/index.db-wal" "$STORE/index.db-shm"
hub_ctl reset
LOG_LINES=$(wc -l <"$WORK/daemon.log")
mount_fg
tail -n +"$((LOG_LINES + 1))" "$WORK/daemon.log" | grep -q "index rebuilt: 2 artifacts" ||
	fail "deleted: the daemon did not log the rebuild: $(tail -n +"$((LOG_LINES + 1))" "$WORK/daemon.log" | tr '\n' '|')"
fresh deleted
serves deleted

# ---- b: garbled while unmounted ---------------------------------------------------
unmount "$MNT"
[ ! -s "$STORE/index.db-wal" ] || echo "note: the index's WAL is not empty after a clean unmount"
head -c 4096 /dev/urandom | dd of="$STORE/index.db" bs=4096 count=1 conv=notrunc status=none
GARBLED=$(sha_of "$STORE/index.db")
hub_ctl reset
LOG_LINES=$(wc -l <"$WORK/daemon.log")
mount_fg
found=0
for f in "$STORE"/quarantine/index.db*; do
	[ -f "$f" ] && [ "$(sha_of "$f")" = "$GARBLED" ] && found=1
done
[ "$found" = 1 ] || fail "garbled: the bad index is not in quarantine/: $(ls "$STORE/quarantine")"
tail -n +"$((LOG_LINES + 1))" "$WORK/daemon.log" | grep -q "index rebuilt: 2 artifacts" ||
	fail "garbled: the daemon did not log the rebuild"
fresh garbled
serves garbled

# ---- c: deleted while mounted, a file held open --------------------------------
unmount "$MNT"
mount_fg
read_all "c, before" # stamps every chunk again (the index of (b) was rebuilt)
AID1=$(q "SELECT id FROM artifacts WHERE canonical_ref = '$REF1'")
exec 3<"$SHARD2"
[ "$(q "SELECT count(*) FROM pins WHERE pid = $DAEMON AND artifact_id = $AID1")" -eq 1 ] ||
	fail "c: no pin row for the open file before the loss"
hub_ctl reset
LOG_LINES=$(wc -l <"$WORK/daemon.log")
rm -f "$STORE/index.db" "$STORE/index.db-wal" "$STORE/index.db-shm"
start=$EPOCHREALTIME
back=""
# Polled without opening the store through modelfs (that would rebuild the
# index itself): sqlite3 only reads a file that exists.
for _ in $(seq 100); do
	sleep 0.1
	[ -f "$STORE/index.db" ] || continue
	back=$(sqlite3 "$STORE/index.db" "SELECT (SELECT count(*) FROM artifacts),
		(SELECT count(*) FROM pins WHERE pid = $DAEMON AND artifact_id = $AID1),
		(SELECT count(*) FROM mounts WHERE pid = $DAEMON)" 2>/dev/null) || continue
	[ "$back" = "2|1|1" ] && break
done
elapsed=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$EPOCHREALTIME")
if [ "$back" != "2|1|1" ]; then
	fail "c: 10 s after the index was deleted the daemon had not rebuilt it with its pin and mount" \
		"(artifacts|pin rows|mount rows: '${back:-no index.db}')"
else
	echo "c: the daemon rebuilt its index in about $elapsed s"
fi
tail -n +"$((LOG_LINES + 1))" "$WORK/daemon.log" | grep -q "index rebuilt: 2 artifacts" ||
	fail "c: the daemon did not log a rebuild: $(tail -n +"$((LOG_LINES + 1))" "$WORK/daemon.log" | tr '\n' '|')"
fresh "held-open"
[ "$(q "SELECT id FROM artifacts WHERE canonical_ref = '$REF1'")" = "$AID1" ] ||
	fail "c: the artifact id of $REF1 changed in the rebuilt index"

# the open descriptor, new opens and the tree, from the new index
out=$(pyread fd:3)
[ "$out" = "sha256 $(published_sha org/split Split-Q4_K_M-00002-of-00003.gguf)" ] ||
	fail "c: the open descriptor reads as '$out'"
drop_caches
serves "held-open"

# other processes see the daemon's mount and its open pin in the new index
st=$(mfs status --json 2>&1) || fail "c: status failed: $st"
python3 - "$st" "$DAEMON" "$AID1" "$MNT" <<'EOF' || fail "c: status does not show the mount and the open pin: $st"
import json, os, sys
s = json.loads(sys.argv[1])
pid, aid, mnt = int(sys.argv[2]), int(sys.argv[3]), os.path.realpath(sys.argv[4])
assert s["artifacts"] == 2, s["artifacts"]
assert any(m["pid"] == pid and os.path.realpath(m["mountpoint"]) == mnt for m in s["mounts"]), s["mounts"]
assert any(p["pid"] == pid and p["artifact_id"] == aid for p in s["open_pins"]), s["open_pins"]
EOF
out=$(mfs evict "$REF1" 2>&1) && fail "c: evict of an open artifact succeeded: $out"
grep -q "is open (pid $DAEMON)" <<<"$out" || fail "c: evict was not refused as busy: $out"
[ "$(q "SELECT count(*) FROM resident r JOIN chunks c ON c.digest = r.digest
	JOIN artifact_files af ON af.file_id = c.file_id JOIN artifacts a ON a.id = af.artifact_id
	WHERE a.canonical_ref = '$REF1'")" -gt 0 ] || fail "c: the refused evict dropped chunks"
out=$(pyread fd:3)
[ "$out" = "sha256 $(published_sha org/split Split-Q4_K_M-00002-of-00003.gguf)" ] ||
	fail "c: the open descriptor reads as '$out' after the refused evict"

# closed: the pin row goes from the new index, and evict is allowed
exec 3<&-
for _ in $(seq 50); do
	[ "$(q "SELECT count(*) FROM pins WHERE pid = $DAEMON")" -eq 0 ] && break
	sleep 0.1
done
[ "$(q "SELECT count(*) FROM pins WHERE pid = $DAEMON")" -eq 0 ] || fail "c: pin row left after the close"
out=$(mfs evict "$REF1" 2>&1) || fail "c: evict after the close failed: $out"
hub_ctl reset
drop_caches
read_all "c, after evict"
[ "$(hub_ranges "*Split-*" | wc -l)" -gt 0 ] || fail "c: the evicted artifact was not fetched again"

unmount "$MNT"
chunks_consistent || fail "a chunk file does not match its name"
check_log
finish

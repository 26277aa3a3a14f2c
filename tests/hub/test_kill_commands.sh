#!/bin/bash
# test_kill_commands.sh - crash safety (product.md §4 and §6) of the commands
# other than pull, against the test hub. Each is killed with SIGKILL at random
# moments, many times; after every kill the index passes integrity_check,
# every chunk file hashes to its name and every resident row has its file,
# usage equals the resident rows, every artifact is wholly installed (rows
# equal to its record, signed manifest kept) or not at all, `ls --json` agrees
# with the index, and the command run again completes.
#
#  1. `add` of a hub-checksum repository (the file staged range by range in
#     partial/ with a progress log, hashed whole, then its ranges renamed into
#     chunks/), killed mid-download (also while a range stalls), mid-hash and
#     mid-commit. The add after the last kill resumes: the hub serves no byte
#     of a staged range the progress log lists. The file then reads correctly:
#     verify, its chunks in index order, and through a mount when FUSE is at
#     hand; a pull of it, all resident, fetches nothing. Kills at chosen
#     points too (strace): as it adopts its first staged range, at the fsync
#     of its record, right after the record's rename (then the next add
#     fetches nothing: every chunk is resident and verified), and at the
#     unlink of the progress log.
#  2. `add` of a signed repository: the same checks; the admission is atomic.
#  3. `evict`, `rm` and `gc --quota` on a store of ~1600 chunks: eviction rows
#     exist exactly for the chunks that left `resident`, an artifact that a
#     killed rm removed is wholly gone (record file included), verify passes.
#     At chosen points too: at the 300th unlink of a chunk file (a batch
#     committed, its files partly removed), and rm between its last
#     transaction and the record's unlink.
# Also: files in tmp/ older than ten minutes go at the next open of the store,
# younger ones stay; gc removes stagings untouched for a day and chunk files
# without a row once ten minutes old.
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
: "${MFS_SOURCE_DIR:?MFS_SOURCE_DIR must name the source tree}"
command -v curl >/dev/null || { echo "skip: curl is needed"; exit 77; }

# the interpreter itself, not a wrapper that finds it at every start
PY=$(python3 -c 'import sys; print(sys.executable)')
TRIES=${MFS_KILL_TRIES:-15}
MAX_TRIES=$((TRIES * 3))
HUB_PID=""
SPID=""
MNT="$WORK/mnt"
cleanup() {
	set +e
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	fi
	[ -z "$SPID" ] || kill -9 "$SPID" 2>/dev/null
	[ -z "$HUB_PID" ] || kill "$HUB_PID" 2>/dev/null
	chmod -R u+w "$WORK" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
rand_ms() { echo $(((RANDOM * 32768 + RANDOM) % ($1 + 1))); }

# ---- the checker ---------------------------------------------------------------
cat >"$WORK/check.py" <<'PYEOF'
"""Checks a store after a kill; one line per broken rule, exit 1 if any.
Writes what it found as shell assignments (F_*) for the caller."""
import argparse, hashlib, json, os, re, shlex, sqlite3, stat, struct, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("store")
ap.add_argument("--modelfs", required=True)
ap.add_argument("--facts")             # shell assignments written here
ap.add_argument("--known")             # chunk files hashed before: name -> [ino, size, mtime_ns]
ap.add_argument("--save-known")
ap.add_argument("--snap")              # index.db of before the command: evidence, artifacts
ap.add_argument("--reasons", default="manual,quota")
ap.add_argument("--all-resident", action="store_true")  # installed => every chunk resident
ap.add_argument("--range-size", type=int, default=4 << 20)
ap.add_argument("--orig")              # the hub's file, which staged ranges must match
ap.add_argument("--orig-key")          # its SHA-256, the name of its staging
a = ap.parse_args()
S = a.store
bad = []
facts = {"TMP": [], "PARTIAL_KEYS": [], "PARTIAL_BYTES": 0, "HASHED": 0, "RESIDENT_BYTES": 0,
         "RESIDENT_CHUNKS": 0, "UNINDEXED": 0, "INSTALLED": [], "ORPHANS": [], "EVICTED": 0,
         "REMOVED": []}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def done(code):
    if a.facts:
        with open(a.facts, "w") as f:
            for k, v in facts.items():
                if isinstance(v, list):
                    f.write("F_%s=(%s)\n" % (k, " ".join(shlex.quote(str(x)) for x in v)))
                else:
                    f.write("F_%s=%s\n" % (k, shlex.quote(str(v))))
    for b in bad:
        print(b)
    sys.exit(code)


idx = os.path.join(S, "index.db")
if not os.path.exists(idx):
    bad.append("the index is gone")
    done(1)
db = sqlite3.connect(idx)
ic = [r[0] for r in db.execute("PRAGMA integrity_check")]
if ic != ["ok"]:
    bad.append("integrity_check says: %s" % "; ".join(ic[:5]))

# What the killed process left, before anything opens the store again.
tmpdir = os.path.join(S, "tmp")
facts["TMP"] = sorted(os.listdir(tmpdir)) if os.path.isdir(tmpdir) else []
# partial/<key>/: ranges staged as <8-digit index>, written as <index>.tmp,
# and `done` listing the indexes staged (core/hub_stage.h). The bytes a resume
# may keep: listed ranges whose file is there whole.
partial = os.path.join(S, "partial")
pkeys = []
for key in sorted(os.listdir(partial)) if os.path.isdir(partial) else []:
    kdir = os.path.join(partial, key)
    if not re.match(r"^([0-9a-f]{40}|[0-9a-f]{64})$", key) or not os.path.isdir(kdir):
        bad.append("stray entry in partial/: %s" % key)
        continue
    pkeys.append(key)
    names = os.listdir(kdir)
    for n in names:
        if not re.match(r"^([0-9]{8}(\.tmp)?|done)$", n):
            bad.append("stray file in partial/%s: %s" % (key, n))
    if "done" not in names:
        continue
    raw = open(os.path.join(kdir, "done"), "rb").read()
    if len(raw) % 4:
        bad.append("progress log partial/%s/done is %d bytes, not whole entries" % (key, len(raw)))
    if key != a.orig_key:
        continue
    size = os.path.getsize(a.orig)
    n = (size + a.range_size - 1) // a.range_size
    orig = open(a.orig, "rb")
    for i in sorted({i for (i,) in struct.iter_unpack("<I", raw[: len(raw) // 4 * 4]) if i < n}):
        want = min(a.range_size, size - i * a.range_size)
        sp = os.path.join(kdir, "%08u" % i)
        if not os.path.isfile(sp) or os.path.getsize(sp) != want:
            continue  # adopted into chunks/ already, or never whole: fetched again
        orig.seek(i * a.range_size)
        if open(sp, "rb").read() != orig.read(want):
            bad.append("staged range %d of %s, listed as done, differs from the hub's bytes" % (i, key))
        facts["PARTIAL_BYTES"] += want
facts["PARTIAL_KEYS"] = pkeys

# chunks/: only directories of two hex digits holding files named by their digest.
known = json.load(open(a.known)) if a.known else {}
files = {}
cdir = os.path.join(S, "chunks")
for d in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else []:
    p = os.path.join(cdir, d)
    if not re.match(r"^[0-9a-f]{2}$", d) or not os.path.isdir(p):
        bad.append("stray entry in chunks/: %s" % d)
        continue
    for n in os.listdir(p):
        st = os.lstat(os.path.join(p, n))
        if not HEX64.match(n) or n[:2] != d or not stat.S_ISREG(st.st_mode):
            bad.append("stray file in chunks/: %s/%s" % (d, n))
            continue
        files[n] = st
        if known.get(n) == [st.st_ino, st.st_size, st.st_mtime_ns]:
            continue  # the very file hashed before, unwritten since
        h = hashlib.sha256()
        with open(os.path.join(p, n), "rb") as f:
            for b in iter(lambda: f.read(1 << 20), b""):
                h.update(b)
        facts["HASHED"] += 1
        if h.hexdigest() != n:
            bad.append("chunk file %s hashes to %s" % (n, h.hexdigest()))
if a.save_known and not bad:
    json.dump({n: [st.st_ino, st.st_size, st.st_mtime_ns] for n, st in files.items()},
              open(a.save_known, "w"))

res = {bytes(d).hex(): sz for d, sz in db.execute("SELECT digest, size FROM resident")}
for d, sz in res.items():
    if d not in files:
        bad.append("resident row %s has no chunk file" % d)
    elif files[d].st_size != sz:
        bad.append("resident row %s says %d bytes, its file has %d" % (d, sz, files[d].st_size))
row = db.execute("SELECT value FROM meta WHERE key = 'resident_bytes'").fetchone()
if row and row[0] != sum(res.values()):
    bad.append("meta.resident_bytes is %d, the resident rows add up to %d" % (row[0], sum(res.values())))
facts["RESIDENT_BYTES"] = sum(res.values())
facts["RESIDENT_CHUNKS"] = len(res)
facts["UNINDEXED"] = len(set(files) - set(res))

# Installed artifacts: each one whole, and equal to its record.
installed = {}
for aid, ref, rec, trust, msha, org, name, commit in db.execute(
        "SELECT id, canonical_ref, record, trust, manifest_sha256, org, name, commit_id FROM artifacts"):
    installed[ref] = rec
    try:
        r = json.load(open(os.path.join(S, "records", rec)))
    except Exception as e:
        bad.append("%s is installed but its record %s is unreadable: %s" % (ref, rec, e))
        continue
    if r.get("canonical_ref") != ref:
        bad.append("%s: record %s names %s" % (ref, rec, r.get("canonical_ref")))
    fids = {x for (x,) in db.execute("SELECT file_id FROM artifact_files WHERE artifact_id = ?", (aid,))}
    if len(fids) != len(r["files"]):
        bad.append("%s has %d file links, its record %d files" % (ref, len(fids), len(r["files"])))
    for rf in r["files"]:
        fr = db.execute("SELECT id, size, sha256, n_chunks FROM files WHERE org = ? AND name = ?"
                        " AND commit_id = ? AND path = ?", (org, name, commit, rf["path"])).fetchone()
        if not fr or fr[0] not in fids:
            bad.append("%s: file %s has no row" % (ref, rf["path"]))
            continue
        if (fr[1], fr[2], fr[3]) != (rf["size"], rf["sha256"], len(rf["chunks"])):
            bad.append("%s: the row of %s differs from the record" % (ref, rf["path"]))
        digs = [bytes(d).hex() for (d,) in
                db.execute("SELECT digest FROM chunks WHERE file_id = ? ORDER BY idx", (fr[0],))]
        if digs != rf["chunks"]:
            bad.append("%s: %d chunk rows of %s against %d digests in the record, or they differ"
                       % (ref, len(digs), rf["path"], len(rf["chunks"])))
        if a.all_resident:
            miss = [d for d in digs if d not in res]
            if miss:
                bad.append("%s: %d of its chunks are not resident" % (ref, len(miss)))
        if trust == "hub" and rf["sha256"] in pkeys:
            bad.append("%s is installed but its download is still in partial/" % ref)
    if trust != "hub":
        for ext in (".json", ".sig"):
            if not os.path.isfile(os.path.join(S, "manifests", msha + ext)):
                bad.append("%s: its signed manifest %s%s is not kept" % (ref, msha, ext))
        mp = os.path.join(S, "manifests", msha + ".json")
        if os.path.isfile(mp) and hashlib.sha256(open(mp, "rb").read()).hexdigest() != msha:
            bad.append("%s: the kept manifest does not hash to %s" % (ref, msha))
facts["INSTALLED"] = sorted(installed)
rdir = os.path.join(S, "records")
for n in sorted(os.listdir(rdir)):
    if re.match(r"^[0-9a-f]{64}\.json$", n) and n not in installed.values():
        try:
            facts["ORPHANS"].append(json.load(open(os.path.join(rdir, n)))["canonical_ref"])
        except Exception as e:
            bad.append("record %s has no rows and cannot be read: %s" % (n, e))

# Evidence, against the index of before the command.
if a.snap:
    sdb = sqlite3.connect("file:%s?mode=ro" % a.snap, uri=True)
    before = {bytes(d).hex() for (d,) in sdb.execute("SELECT digest FROM resident")}
    maxid = sdb.execute("SELECT coalesce(max(id), 0) FROM evictions").fetchone()[0]
    ev = db.execute("SELECT digest, reason, artifact, path FROM evictions WHERE id > ?", (maxid,)).fetchall()
    evd = {bytes(r[0]).hex() for r in ev if r[0] is not None}
    after = set(res)
    gone = before - after
    if after - before:
        bad.append("%d chunks became resident" % len(after - before))
    if evd & after:
        bad.append("%d eviction rows name chunks that are still resident" % len(evd & after))
    if gone - evd:
        bad.append("%d chunks left resident without an eviction row" % len(gone - evd))
    odd = {r[1] for r in ev} - set(a.reasons.split(","))
    if odd:
        bad.append("eviction reasons %s, expected %s" % (sorted(odd), a.reasons))
    if any(r[2] is None or r[3] is None for r in ev):
        bad.append("an eviction row names no artifact or path, though every chunk had both")
    facts["EVICTED"] = len(gone)
    # An artifact of before is still whole (checked above) or wholly gone.
    for aid, ref, rec, org, name, commit in sdb.execute(
            "SELECT id, canonical_ref, record, org, name, commit_id FROM artifacts"):
        if ref in installed:
            continue
        facts["REMOVED"].append(ref)
        left = []
        if os.path.exists(os.path.join(S, "records", rec)):
            left.append("its record file")
        old = [f for (f,) in sdb.execute("SELECT file_id FROM artifact_files WHERE artifact_id = ?", (aid,))]
        q = ",".join("?" * len(old))
        for what, sql, args in (
                ("files rows", "SELECT count(*) FROM files WHERE id IN (%s)" % q, old),
                ("chunks rows", "SELECT count(*) FROM chunks WHERE file_id IN (%s)" % q, old),
                ("artifact_files rows", "SELECT count(*) FROM artifact_files WHERE artifact_id = ?", [aid]),
                ("refs rows", "SELECT count(*) FROM refs WHERE org = ? AND name = ? AND commit_id = ?",
                 [org, name, commit])):
            n = db.execute(sql, args).fetchone()[0]
            if n:
                left.append("%d %s" % (n, what))
        if left:
            bad.append("%s is uninstalled, yet left behind: %s" % (ref, ", ".join(left)))

# What the command line says is installed: the same set.
out = subprocess.run([a.modelfs, "--store", S, "ls", "--json"], capture_output=True, text=True)
if out.returncode:
    bad.append("ls --json failed: %s" % out.stderr.strip())
else:
    refs = sorted(x["canonical_ref"] for x in json.loads(out.stdout))
    if refs != sorted(installed):
        bad.append("ls --json lists %s, the artifacts table %s" % (refs, sorted(installed)))
done(1 if bad else 0)
PYEOF

# check_store WHAT [check.py options]: the checks above on $STORE; sets F_*
check_store() {
	local what=$1 out
	shift
	rm -f "$WORK/facts.sh"
	out=$("$PY" -S "$WORK/check.py" "$STORE" --modelfs "$MODELFS" --facts "$WORK/facts.sh" \
		--orig "$HUBROOT/hf/big/$C1/$BIG" --orig-key "$BIG_SHA" "$@" 2>&1) ||
		fail "$what: ${out//$'\n'/; }"
	[ -f "$WORK/facts.sh" ] || die "$what: the checker stopped: $out"
	source "$WORK/facts.sh"
}

# A record with no rows (a kill between writing it and the commit) holds only
# verified facts: an index rebuilt from the records makes it whole.
check_rebuild() {
	local what=$1 ref=$2 copy="$WORK/rebuilt" out
	shift 2
	chmod -R u+w "$copy" 2>/dev/null || true
	rm -rf "$copy"
	cp -a "$STORE" "$copy"
	rm -f "$copy"/index.db*
	"$MODELFS" --store "$copy" ls >/dev/null 2>&1 || fail "$what: ls on a copy without its index failed"
	out=$("$PY" -S "$WORK/check.py" "$copy" --modelfs "$MODELFS" --facts "$WORK/rebuilt.sh" "$@" 2>&1) ||
		fail "$what: the store rebuilt from its records: ${out//$'\n'/; }"
	(source "$WORK/rebuilt.sh" && printf '%s\n' "${F_INSTALLED[@]}") 2>/dev/null | grep -qxF "$ref" ||
		fail "$what: a rebuild does not install $ref"
	out=$("$MODELFS" --store "$copy" verify 2>&1) || fail "$what: verify of the rebuilt store: $out"
	chmod -R u+w "$copy" 2>/dev/null || true
	rm -rf "$copy"
}

check_verify() {
	capture mfs verify || { fail "$1: verify exited non-zero: $OUT $ERR"; return 0; }
	grep -qE ", 0 bad chunk\(s\), 0 unrepaired" <<<"$OUT" || fail "$1: verify says: $OUT"
}

# ---- the hub --------------------------------------------------------------------
C1=1111111111111111111111111111111111111111
C2=2222222222222222222222222222222222222222
HUBROOT="$WORK/hubroot"
BIG=big-Q4_K_M.gguf
mkdir -p "$HUBROOT/hf/big/$C1"
"$MFS_GEN" gguf "$HUBROOT/hf/big/$C1/$BIG" --tensors 6 --tensor-bytes 4194304 --seed 11 >/dev/null
echo "{\"branches\": {\"main\": \"$C1\"}}" >"$HUBROOT/hf/big/refs.json"
BIG_SIZE=$(stat -c %s "$HUBROOT/hf/big/$C1/$BIG")
BIG_SHA=$(sha256 "$HUBROOT/hf/big/$C1/$BIG")
BIG_REF=hf/big@$C1/$BIG
REC_BIG=$(printf '%s' "$BIG_REF" | sha256sum | cut -d' ' -f1).json
keygen
# acme/s for the signed adds; acme/a, b and c, in 16 KiB chunks, for part 3
for spec in s:2:20:256K a:4:21:16K b:1:22:16K c:1:23:16K; do
	IFS=: read -r n t seed cs <<<"$spec"
	mkdir -p "$HUBROOT/acme/$n/$C2"
	"$MFS_GEN" gguf "$HUBROOT/acme/$n/$C2/$n-Q4_K_M.gguf" --tensors "$t" --tensor-bytes 4194304 \
		--seed "$seed" >/dev/null
	mfs publish --key "$WORK/k.key" --repo "acme/$n" --chunk-size "$cs" "$HUBROOT/acme/$n/$C2" >/dev/null ||
		die "publish acme/$n failed"
	echo "{\"branches\": {\"main\": \"$C2\"}}" >"$HUBROOT/acme/$n/refs.json"
done
S_FILE=$HUBROOT/acme/s/$C2/s-Q4_K_M.gguf
S_REF=acme/s@$C2/s-Q4_K_M.gguf
A_REF=acme/a@$C2/a-Q4_K_M.gguf

"$PY" "$MFS_SOURCE_DIR/tests/hub/testhub.py" "$HUBROOT" --ready "$WORK/ready" --lifetime 900 \
	--stall-seconds 60 >"$WORK/hub.log" 2>&1 &
HUB_PID=$!
for _ in $(seq 100); do [ -s "$WORK/ready" ] && break; sleep 0.1; done
[ -s "$WORK/ready" ] || die "test hub did not start: $(cat "$WORK/hub.log")"
read -r _ HP _ _ <"$WORK/ready"
EP=http://127.0.0.1:$HP
# the hub hashes a file at its first listing: not inside a measurement
for r in hf/big acme/s acme/a acme/b acme/c; do
	curl -sf "$EP/api/models/$r/revision/main?blobs=true" >/dev/null || die "hub listing of $r failed"
done
hub_reset() { curl -sf -X POST "$EP/_control/reset" >/dev/null || fail "hub reset failed"; }
hub_stall() {
	curl -sf -X POST "$EP/_control/fault?name=stall&path=$1&count=1" >/dev/null || fail "hub fault failed"
}
# how often a fault fired since the last reset
hub_fired() {
	curl -sf "$EP/_control/stats" |
		"$PY" -S -c 'import json, sys; print(json.load(sys.stdin)["faults_fired"].get(sys.argv[1], 0))' "$1"
}
# bytes the CDN was asked for, of one file, since the last reset
hub_served() {
	curl -sf "$EP/_control/stats" | "$PY" -S -c '
import json, re, sys
s = json.load(sys.stdin)
t = 0
for k, n in s["ranges"].items():
    p = k.split(" ")
    if len(p) == 3 and p[0] == "cdn" and p[1] == sys.argv[1]:
        m = re.match(r"bytes=(\d+)-(\d+)$", p[2])
        t += n * (int(m.group(2)) - int(m.group(1)) + 1 if m else int(sys.argv[2]))
print(t)' "$1" "$2"
}

HAVE_STRACE=0
if command -v strace >/dev/null && strace -f -qq -o /dev/null -e trace=getpid true 2>/dev/null; then
	HAVE_STRACE=1
	# In a sanitizer build: LeakSanitizer cannot run under ptrace, and
	# would fail every traced command (the other tests check for leaks).
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
else
	echo "note: strace cannot trace here; the kills at chosen points are left out"
fi

# traced STRACE-ARGS... CMD...: CMD under strace, which injects the kill; RC
# is the exit status
traced() {
	local pid
	strace -f -qq -o /dev/null "$@" >/dev/null 2>&1 &
	pid=$!
	RC=0
	{ wait "$pid"; } 2>/dev/null || RC=$?
}

# run_killed DELAY_MS CMD...: starts CMD (the binary itself, so $! is modelfs)
# and sends it SIGKILL after DELAY_MS; RC is its exit status (137: killed)
run_killed() {
	local delay=$1 pid
	shift
	"$@" >"$WORK/cmd.out" 2>"$WORK/cmd.err" &
	pid=$!
	sleep_ms "$delay"
	kill -9 "$pid" 2>/dev/null || true
	RC=0
	{ wait "$pid"; } 2>/dev/null || RC=$?
}

# next_window W CAL: the delay window after a try, shrunk when the command
# finished before the kill, grown back towards CAL when it was killed
next_window() {
	if [ "$RC" = 0 ]; then
		echo $(($1 * 3 / 4 < 20 ? 20 : $1 * 3 / 4))
	else
		echo $(($1 * 5 / 4 > $2 ? $2 : $1 * 5 / 4))
	fi
}

# The bytes as the store serves them: the chunks in index order.
assembled_sha() {
	"$PY" -S - "$STORE" "$1" <<'EOF'
import hashlib, os, sqlite3, sys
store, path = sys.argv[1:]
db = sqlite3.connect(os.path.join(store, "index.db"))
(fid,) = db.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
h = hashlib.sha256()
for (d,) in db.execute("SELECT digest FROM chunks WHERE file_id = ? ORDER BY idx", (fid,)):
    d = bytes(d).hex()
    h.update(open(os.path.join(store, "chunks", d[:2], d), "rb").read())
print(h.hexdigest())
EOF
}

# read_mounted REF SHA: the file read through a real mount hashes to SHA
read_mounted() {
	local ref=$1 want=$2 daemon got
	if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
		echo "note: no FUSE here; $ref was checked through its chunks only"
		return 0
	fi
	mkdir -p "$MNT"
	"$MODELFS" --store "$STORE" mount "$MNT" -f >"$WORK/mount.log" 2>&1 &
	daemon=$!
	for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
	if ! mountpoint -q "$MNT"; then
		fail "the mount did not come up: $(cat "$WORK/mount.log")"
		kill "$daemon" 2>/dev/null || true
		wait "$daemon" 2>/dev/null || true
		return 0
	fi
	got=$(sha256sum "$MNT/$ref" | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "$ref read through the mount hashes to $got, not $want"
	fusermount3 -u "$MNT" || fail "fusermount3 -u failed"
	for _ in $(seq 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
	kill "$daemon" 2>/dev/null || true
	wait "$daemon" 2>/dev/null || true
}

fresh_store() {
	chmod -R u+w "$STORE" 2>/dev/null || true
	rm -rf "$STORE"
	mfs trust hub --prefix hf/ >/dev/null || die "trust hub failed"
	mfs trust add "$WORK/k.pub" --prefix acme/ >/dev/null || die "trust add failed"
	mfs ls >/dev/null || die "ls on a new store failed" # creates the index
}

# calibrate CMD...: how long CMD takes uninterrupted on a new store, in ms
calibrate() {
	local t0 t1 keep=$STORE
	STORE="$WORK/cal"
	export MODELFS_STORE=$STORE
	fresh_store
	t0=$(now_ms)
	"$@" >/dev/null 2>"$WORK/cal.err" || die "uninterrupted '$*' failed: $(cat "$WORK/cal.err")"
	t1=$(now_ms)
	chmod -R u+w "$STORE"
	rm -rf "$STORE"
	STORE=$keep
	export MODELFS_STORE=$STORE
	CAL=$((t1 - t0 < 50 ? 50 : t1 - t0))
}

# ==== 1. add, hub-checksum trust ==================================================
t_part=$SECONDS
calibrate "$MODELFS" add --endpoint "$EP" hf/big
T1=$CAL
W=$T1
echo "hub add: about $T1 ms uninterrupted"
fresh_store
tries=0 killed=0 completed=0 stalled=0 mid_commit=0 orphans=0 last_partial=0
while [ "$tries" -lt "$MAX_TRIES" ]; do
	if [ "$killed" -ge "$TRIES" ] && [ "$stalled" -ge 1 ] && [ "$last_partial" = 1 ]; then
		break
	fi
	tries=$((tries + 1))
	f0=$FAILS
	hub_reset
	if [ $((tries % 3)) = 0 ] || { [ "$killed" -ge "$TRIES" ] && [ "$last_partial" = 0 ]; }; then
		# A range that stalls: the add waits on it long past the time it
		# would take, its other ranges done.
		hub_stall "$BIG"
		delay=$((W + $(rand_ms 300)))
		stall=1
	else
		delay=$(rand_ms "$W")
		stall=0
	fi
	run_killed "$delay" "$MODELFS" add --endpoint "$EP" hf/big
	what="hub add, try $tries (${delay} ms, exit $RC)"
	if [ "$stall" = 1 ] && [ "$(hub_fired stall)" -ge 1 ]; then
		stall=2 # killed, or finished, after a range stalled
	fi
	case $RC in
	137) killed=$((killed + 1)); [ "$stall" != 2 ] || stalled=$((stalled + 1)) ;;
	0) completed=$((completed + 1)) ;;
	*) fail "$what: add failed: $(cat "$WORK/cmd.err")" ;;
	esac
	[ "$stall" != 0 ] || W=$(next_window "$W" "$T1")
	check_store "$what"
	for ref in "${F_ORPHANS[@]}"; do
		orphans=$((orphans + 1))
		check_rebuild "$what" "$ref" --all-resident
	done
	[ "$FAILS" -eq "$f0" ] || die "the store is inconsistent after $what"
	if [ "$RC" = 137 ] && [ "$F_RESIDENT_CHUNKS" -gt 0 ]; then
		mid_commit=$((mid_commit + 1))
	fi
	if [ "${#F_INSTALLED[@]}" -gt 0 ]; then
		fresh_store # installed: start over, so that later kills land mid-add
		last_partial=0
	elif [ "$F_PARTIAL_BYTES" -gt 0 ] && [ "$F_PARTIAL_BYTES" -lt "$BIG_SIZE" ]; then
		last_partial=1 # a download with ranges done and ranges missing
	else
		last_partial=0
	fi
done
echo "hub add: $tries tries, $killed killed ($stalled on a stalled range, $mid_commit after" \
	"chunks were committed), $completed finished first, $orphans records without rows;" \
	"$((SECONDS - t_part)) s"
[ "$killed" -ge "$TRIES" ] || die "only $killed of $tries adds were killed mid-way"
[ "$last_partial" = 1 ] || die "no partly done download was left to resume"

# The last add resumes: the hub serves no range that the progress log lists.
RESUMED=$F_PARTIAL_BYTES
hub_reset
expect_ok mfs add --endpoint "$EP" hf/big || die "the add after the kills failed"
[ "$OUT" = "$BIG_REF" ] || fail "the add after the kills printed '$OUT'"
SERVED=$(hub_served "$BIG" "$BIG_SIZE")
echo "resume: $RESUMED of $BIG_SIZE bytes were in partial/, the hub then served $SERVED"
[ "$SERVED" -le $((BIG_SIZE - RESUMED)) ] ||
	fail "the resumed add fetched $SERVED bytes; only $((BIG_SIZE - RESUMED)) were missing"
[ "$SERVED" -lt "$BIG_SIZE" ] || fail "the resumed add fetched the whole file again"
[ "$SERVED" -gt 0 ] || fail "the resumed add fetched nothing, though ranges were missing"
check_store "after the resumed add" --all-resident
[ "${#F_PARTIAL_KEYS[@]}" = 0 ] || fail "partial/ still holds ${F_PARTIAL_KEYS[*]} after the add"
# pull fetches only what is missing: nothing
expect_ok mfs pull --endpoint "$EP" hf/big || fail "pull after the add failed"
AFTER=$(hub_served "$BIG" "$BIG_SIZE")
[ "$AFTER" = "$SERVED" ] ||
	fail "pull of the fully resident hf/big downloaded $((AFTER - SERVED)) bytes again"
check_verify "hub add"
ls_json
json_check "(len(a) == 1 and a[0]['trust'] == 'hub' and a[0]['files'][0]['verified'] is True
	and a[0]['files'][0]['resident_bytes'] == $BIG_SIZE)" "hf/big is not resident and verified"
[ "$(assembled_sha "$BIG")" = "$BIG_SHA" ] || fail "the chunks of $BIG do not make up the original"
read_mounted "$BIG_REF" "$BIG_SHA"

# ---- 1b. kills at chosen points of a hub add -------------------------------------
TMP_STORE="$WORK/tmpstore"
LEFT_TMP=()
if [ "$HAVE_STRACE" = 1 ]; then
	# Which rename of its thread puts the record in place, in an add into a
	# new store (strace counts an injection's calls per thread; the thread
	# that admits renames the staged ranges into chunks/, then the record).
	fresh_store
	strace -f -qq -o "$WORK/renames.txt" -e trace=rename,renameat,renameat2 \
		"$MODELFS" add --endpoint "$EP" hf/big >/dev/null 2>&1 || die "the add under strace failed"
	MAIN=$(grep -m1 "/records/$REC_BIG" "$WORK/renames.txt" | cut -d' ' -f1)
	K_RECORD=$(grep "^$MAIN " "$WORK/renames.txt" | grep -v 'resumed>' |
		grep -n -m1 "/records/$REC_BIG" | cut -d: -f1)
	[ -n "$K_RECORD" ] || die "an add renames nothing into records/: $(head -c 2000 "$WORK/renames.txt")"

	# At the first staged range's adoption into chunks/ (at its stat): the
	# file is downloaded and staged whole, nothing is kept yet; the next add
	# downloads nothing again.
	fresh_store
	traced -P "$STORE/partial/$BIG_SHA/00000000" -e trace=%stat,%lstat,%fstat \
		-e inject=%stat,%lstat,%fstat:signal=KILL \
		"$MODELFS" add --endpoint "$EP" hf/big
	what="killed as it adopts its first range (exit $RC)"
	[ "$RC" = 137 ] || fail "$what: not killed"
	check_store "$what"
	[ "${#F_INSTALLED[@]}" = 0 ] && [ "$F_RESIDENT_CHUNKS" = 0 ] ||
		fail "$what: ${#F_INSTALLED[@]} installed, $F_RESIDENT_CHUNKS chunks resident"
	[ "$F_PARTIAL_BYTES" = "$BIG_SIZE" ] ||
		fail "$what: partial/ holds $F_PARTIAL_BYTES of $BIG_SIZE bytes the next add may keep"
	hub_reset
	expect_ok mfs add --endpoint "$EP" hf/big || fail "the add after a kill at the adoption failed"
	SERVED=$(hub_served "$BIG" "$BIG_SIZE")
	[ "$SERVED" = 0 ] || fail "the download was staged whole, yet the next add was served $SERVED bytes"
	check_store "after the add that followed" --all-resident

	# At the fsync of the record being written: it stays in tmp/.
	fresh_store
	traced -e trace=fsync -e inject=fsync:signal=KILL "$MODELFS" add --endpoint "$EP" hf/big
	what="killed at the fsync of its record (exit $RC)"
	[ "$RC" = 137 ] || fail "$what: not killed"
	check_store "$what" --all-resident
	[ "${#F_INSTALLED[@]}" = 0 ] && [ "${#F_ORPHANS[@]}" = 0 ] ||
		fail "$what: installed '${F_INSTALLED[*]}', records without rows '${F_ORPHANS[*]}'"
	LEFT_TMP=("${F_TMP[@]}")
	printf '%s\n' "${LEFT_TMP[@]}" | grep -q "^$REC_BIG\." ||
		fail "$what: the record is not in tmp/ (tmp/ holds '${LEFT_TMP[*]}')"
	expect_ok mfs add --endpoint "$EP" hf/big || fail "the add after a kill at the record's fsync failed"
	check_store "after the add that followed" --all-resident
	mv "$STORE" "$TMP_STORE" # for the tmp/ test below

	# Right after the record is in place, before the transaction commits: a
	# record without rows, not visible, that a rebuild would make whole. The
	# rename's return is held back (strace) while the add is killed.
	fresh_store
	strace -f -qq -o /dev/null -e trace=rename,renameat,renameat2 \
		-e "inject=rename,renameat,renameat2:delay_exit=20000000:when=$K_RECORD" \
		"$MODELFS" add --endpoint "$EP" hf/big >/dev/null 2>&1 &
	SPID=$!
	for _ in $(seq 300); do [ -e "$STORE/records/$REC_BIG" ] && break; sleep 0.05; done
	child=$(cat "/proc/$SPID/task/$SPID/children" 2>/dev/null || true)
	if [ -e "$STORE/records/$REC_BIG" ] && [ -n "$child" ]; then
		kill -9 $child
	else
		fail "the add never reached its record"
	fi
	kill -9 "$SPID" 2>/dev/null || true
	{ wait "$SPID"; } 2>/dev/null || true
	SPID=""
	what="killed right after writing its record"
	check_store "$what" --all-resident
	[ "${#F_INSTALLED[@]}" = 0 ] || fail "$what: the admission committed"
	[ "${F_ORPHANS[*]}" = "$BIG_REF" ] || fail "$what: records without rows: '${F_ORPHANS[*]}'"
	check_rebuild "$what" "$BIG_REF" --all-resident
	hub_reset
	expect_ok mfs add --endpoint "$EP" hf/big || fail "the add after a kill at the record failed"
	SERVED=$(hub_served "$BIG" "$BIG_SIZE")
	[ "$SERVED" = 0 ] || fail "every chunk was resident and verified when the add was killed after" \
		"writing its record, yet the next add downloaded $SERVED bytes again"
	check_store "after the add that followed" --all-resident
	[ "${#F_INSTALLED[@]}" = 1 ] || fail "hf/big not installed after the add that followed"

	# After the last range's adoption, at the removal of the progress log
	# (the add's first unlink): the staging lists ranges that are gone.
	fresh_store
	traced -e trace=unlink,unlinkat -e inject=unlink,unlinkat:signal=KILL \
		"$MODELFS" add --endpoint "$EP" hf/big
	what="killed at the unlink of its progress log (exit $RC)"
	[ "$RC" = 137 ] || fail "$what: not killed"
	check_store "$what" --all-resident
	[ "${#F_INSTALLED[@]}" = 0 ] || fail "$what: installed before its record"
	[ -f "$STORE/partial/$BIG_SHA/done" ] && [ "$F_RESIDENT_CHUNKS" -gt 0 ] ||
		fail "$what: expected the progress log in place, the ranges adopted"
	capture mfs add --endpoint "$EP" hf/big || fail "$what: the next add fails: $ERR"
	check_store "after the add that followed" --all-resident
	[ "${#F_INSTALLED[@]}" = 1 ] || fail "hf/big not installed after the add that followed"
else
	MODELFS_STORE=$TMP_STORE "$MODELFS" ls >/dev/null || die "ls on a new store failed"
fi

# ---- tmp/: what a dead writer left goes at the next open, once ten minutes old ----
mkdir -p "$TMP_STORE/tmp"
echo stale >"$TMP_STORE/tmp/0123456789abcdef.AbCdEf"
echo young >"$TMP_STORE/tmp/fedcba9876543210.ZyXwVu"
echo young >"$TMP_STORE/tmp/manifest.json.QwErTy"
for f in "${LEFT_TMP[@]}" 0123456789abcdef.AbCdEf; do
	touch -d '11 minutes ago' "$TMP_STORE/tmp/$f"
done
touch -d '9 minutes ago' "$TMP_STORE/tmp/fedcba9876543210.ZyXwVu"
"$MODELFS" --store "$TMP_STORE" ls >/dev/null || fail "ls on the store with stale tmp/ files failed"
for f in "${LEFT_TMP[@]}" 0123456789abcdef.AbCdEf; do
	[ ! -e "$TMP_STORE/tmp/$f" ] || fail "tmp/$f, 11 minutes old, is still there after an open"
done
for f in fedcba9876543210.ZyXwVu manifest.json.QwErTy; do
	[ -e "$TMP_STORE/tmp/$f" ] || fail "tmp/$f, younger than 10 minutes, was removed at open"
done
# gc: stagings untouched for a day go, younger ones stay
OLDP=$(printf 'old' | sha256sum | cut -d' ' -f1)
NEWP=$(printf 'new' | sha256sum | cut -d' ' -f1)
for k in "$OLDP" "$NEWP"; do
	mkdir -p "$TMP_STORE/partial/$k"
	head -c 4096 /dev/zero >"$TMP_STORE/partial/$k/00000000"
	printf '\0\0\0\0' >"$TMP_STORE/partial/$k/done"
done
touch -d '25 hours ago' "$TMP_STORE/partial/$OLDP" "$TMP_STORE/partial/$OLDP"/*
touch -d '23 hours ago' "$TMP_STORE/partial/$NEWP" "$TMP_STORE/partial/$NEWP"/*
"$MODELFS" --store "$TMP_STORE" gc >/dev/null || fail "gc failed"
[ ! -e "$TMP_STORE/partial/$OLDP" ] || fail "gc left a staging untouched for 25 hours"
[ -e "$TMP_STORE/partial/$NEWP/00000000" ] && [ -e "$TMP_STORE/partial/$NEWP/done" ] ||
	fail "gc removed a staging untouched for only 23 hours"
chmod -R u+w "$TMP_STORE"
rm -rf "$TMP_STORE"

# ==== 2. add, signed manifest ======================================================
t_part=$SECONDS
calibrate "$MODELFS" add --endpoint "$EP" acme/s
T2=$CAL
W=$T2
echo "signed add: about $T2 ms uninterrupted"
fresh_store
tries=0 killed=0 completed=0 orphans=0
while [ "$tries" -lt "$MAX_TRIES" ] && [ "$killed" -lt "$TRIES" ]; do
	tries=$((tries + 1))
	f0=$FAILS
	hub_reset
	if [ $((tries % 3)) = 0 ]; then
		hub_stall s-Q4_K_M.gguf # the header's fetch hangs, unless it is resident
		delay=$((W + $(rand_ms 200)))
		stall=1
	else
		delay=$(rand_ms "$W")
		stall=0
	fi
	run_killed "$delay" "$MODELFS" add --endpoint "$EP" acme/s
	what="signed add, try $tries (${delay} ms, exit $RC)"
	case $RC in
	137) killed=$((killed + 1)) ;;
	0) completed=$((completed + 1)) ;;
	*) fail "$what: add failed: $(cat "$WORK/cmd.err")" ;;
	esac
	[ "$stall" = 1 ] || W=$(next_window "$W" "$T2")
	check_store "$what"
	for ref in "${F_ORPHANS[@]}"; do
		orphans=$((orphans + 1))
		check_rebuild "$what" "$ref"
	done
	[ "$FAILS" -eq "$f0" ] || die "the store is inconsistent after $what"
	[ "${#F_INSTALLED[@]}" = 0 ] || fresh_store
done
echo "signed add: $tries tries, $killed killed, $completed finished first, $orphans records without" \
	"rows; $((SECONDS - t_part)) s"
[ "$killed" -ge "$TRIES" ] || die "only $killed of $tries signed adds were killed mid-way"
hub_reset
expect_ok mfs add --endpoint "$EP" acme/s || die "the signed add after the kills failed"
[ "$OUT" = "$S_REF" ] || fail "the signed add printed '$OUT'"
check_store "after the signed add"
ls_json
json_check "len(a) == 1 and a[0]['trust'] == '$KEY_ID'" "acme/s is not installed under key $KEY_ID"
check_verify "signed add"
expect_ok mfs pull --endpoint "$EP" acme/s || die "pull of acme/s failed"
check_store "after the pull of acme/s" --all-resident
[ "$(assembled_sha s-Q4_K_M.gguf)" = "$(sha256 "$S_FILE")" ] ||
	fail "the chunks of s-Q4_K_M.gguf do not make up the original"
read_mounted "$S_REF" "$(sha256 "$S_FILE")"

# ==== 3. evict, rm, gc on thousands of chunks ========================================
for n in a b c; do
	expect_ok mfs pull --endpoint "$EP" "acme/$n" || die "pull of acme/$n failed"
done
mfs verify >/dev/null || die "verify before the snapshot failed" # stamps every chunk
SNAP="$WORK/snap"
mkdir -p "$SNAP"
# Chunk files hard-linked: eviction compares inodes with the index.
cp -al "$STORE/chunks" "$SNAP/"
for f in "$STORE"/*; do [ "$(basename "$f")" = chunks ] || cp -a "$f" "$SNAP/"; done
f0=$FAILS
check_store "the store before the kills" --all-resident --save-known "$WORK/known.json"
[ "$FAILS" -eq "$f0" ] || die "the store is inconsistent before the kills"
[ "$F_RESIDENT_CHUNKS" -ge 1500 ] || die "the store has only $F_RESIDENT_CHUNKS resident chunks"
REC_A=$(sqlite3 "$SNAP/index.db" "SELECT record FROM artifacts WHERE canonical_ref = '$A_REF'")
echo "store: $F_RESIDENT_CHUNKS resident chunks, $(sqlite3 "$SNAP/index.db" \
	"SELECT n_chunks FROM files WHERE name = 'a'") of them acme/a's"

SNAP_FILES=$(find "$SNAP/chunks" -type f | wc -l)
# The store as in the snapshot; chunk files the last run removed are linked
# again, the others kept (a link per file is the slow part).
restore() {
	[ ! -d "$STORE/chunks" ] || mv "$STORE/chunks" "$WORK/chunks.keep"
	chmod -R u+w "$STORE" 2>/dev/null || true
	rm -rf "$STORE"
	mkdir -p "$STORE"
	[ ! -d "$WORK/chunks.keep" ] || mv "$WORK/chunks.keep" "$STORE/chunks"
	cp -aln "$SNAP/chunks" "$STORE/"
	for f in "$SNAP"/*; do [ "$(basename "$f")" = chunks ] || cp -a "$f" "$STORE/"; done
	[ "$(find "$STORE/chunks" -type f | wc -l)" = "$SNAP_FILES" ] ||
		die "the store's chunk files differ from the snapshot's after a restore"
}

# after_run CMD WHAT: the command ran to its end: the index is sound, every
# chunk that left `resident` has its eviction row and no eviction row names a
# resident chunk, and the command did its work
after_run() {
	local ev="SELECT digest FROM main.evictions WHERE id > (SELECT coalesce(max(id), 0) FROM s.evictions)"
	local q="ATTACH '$SNAP/index.db' AS s;
		SELECT count(*) || ' chunks left without an eviction row' FROM s.resident o
		 WHERE o.digest NOT IN (SELECT digest FROM main.resident) AND o.digest NOT IN ($ev)
		 HAVING count(*) > 0;
		SELECT count(*) || ' eviction rows name resident chunks' FROM main.resident
		 WHERE digest IN ($ev) HAVING count(*) > 0;"
	local out low
	case $1 in
	evict)
		q="$q SELECT count(*) || ' chunks of acme/a are resident after evict' FROM main.resident r
		 JOIN main.chunks c ON c.digest = r.digest JOIN main.files f ON f.id = c.file_id
		 WHERE f.name = 'a' HAVING count(*) > 0;
		SELECT count(*) || ' artifacts installed after evict' FROM main.artifacts HAVING count(*) != 4;"
		;;
	rm)
		q="$q SELECT 'acme/a is installed after rm' FROM main.artifacts WHERE name = 'a';
		SELECT count(*) || ' artifacts installed after rm' FROM main.artifacts HAVING count(*) != 3;"
		[ ! -e "$STORE/records/$REC_A" ] || fail "$2: the record of acme/a is still there after rm"
		;;
	gc)
		low=$(sed -n 's/.*"low_bytes": *\([0-9]*\).*/\1/p' "$WORK/gc.json")
		[ -n "$low" ] || fail "$2: gc --json printed no low_bytes: $(cat "$WORK/gc.json")"
		q="$q SELECT 'usage ' || value || ' is above the low watermark ${low:-0}' FROM main.meta
		 WHERE key = 'resident_bytes' AND value > ${low:-0};
		SELECT 'no quota after gc --quota' WHERE (SELECT coalesce(max(value), 0) FROM main.meta
		 WHERE key = 'quota_bytes') = 0;"
		;;
	esac
	out=$(sqlite3 "$STORE/index.db" "$q PRAGMA main.integrity_check;" 2>&1)
	[ "$out" = ok ] || fail "$2: ${out//$'\n'/; }"
}

GC_QUOTA=28M # of ~32 MiB resident: gc evicts down to 30 %
cmd_args() {
	case $1 in
	evict) args=(evict "$A_REF"); reasons=manual ;;
	rm) args=(rm "$A_REF"); reasons=manual ;;
	gc) args=(gc --quota "$GC_QUOTA" --low 30 --json); reasons=quota ;;
	esac
}
for cmd in evict rm gc; do
	cmd_args "$cmd"
	t_part=$SECONDS
	restore
	f0=$FAILS
	t0=$(now_ms)
	expect_ok mfs "${args[@]}" || die "uninterrupted $cmd failed"
	T3=$(($(now_ms) - t0))
	W=$T3
	echo "$OUT" >"$WORK/gc.json"
	check_store "$cmd uninterrupted" --snap "$SNAP/index.db" --reasons "$reasons" --known "$WORK/known.json"
	after_run "$cmd" "$cmd uninterrupted"
	[ "$FAILS" -eq "$f0" ] || die "$cmd does not do its work even uninterrupted"
	echo "$cmd: about $T3 ms uninterrupted, $F_EVICTED chunks evicted"
	tries=0 killed=0 partway=0 completed=0
	while [ "$tries" -lt "$MAX_TRIES" ] && [ "$killed" -lt "$TRIES" ]; do
		tries=$((tries + 1))
		f0=$FAILS
		restore
		delay=$(rand_ms "$W")
		run_killed "$delay" "$MODELFS" "${args[@]}"
		what="$cmd, try $tries (${delay} ms, exit $RC)"
		case $RC in
		137) killed=$((killed + 1)) ;;
		0) completed=$((completed + 1)) ;;
		*) fail "$what: $cmd failed: $(cat "$WORK/cmd.err")" ;;
		esac
		W=$(next_window "$W" "$T3")
		# An rm sets its record aside inside its last transaction; killed
		# before the commit, the next open of the store puts it back.
		[ "$cmd" = rm ] && mfs status >/dev/null 2>&1
		check_store "$what" --snap "$SNAP/index.db" --reasons "$reasons" --known "$WORK/known.json"
		if [ "$RC" = 137 ] && [ "$F_EVICTED" -gt 0 ] && [ "${#F_REMOVED[@]}" = 0 ]; then
			partway=$((partway + 1))
		fi
		check_verify "$what"
		[ "$FAILS" -eq "$f0" ] || die "the store is inconsistent after $what"
		# the command once more, to its end (an rm that got through has no more to do)
		if [ "$cmd" != rm ] || [ "${#F_REMOVED[@]}" = 0 ]; then
			expect_ok mfs "${args[@]}" || die "$what: running $cmd again failed"
			echo "$OUT" >"$WORK/gc.json"
		fi
		after_run "$cmd" "$what, run again"
		[ "$FAILS" -eq "$f0" ] || die "the store is wrong after $what and a second run"
	done
	echo "$cmd: $tries tries, $killed killed ($partway with some chunks evicted and the artifact" \
		"installed), $completed finished first; $((SECONDS - t_part)) s"
	[ "$killed" -ge "$TRIES" ] || die "only $killed of $tries runs of $cmd were killed mid-way"
done

# ---- 3b. kills at chosen points of evict, rm and gc --------------------------------
if [ "$HAVE_STRACE" = 1 ]; then
	# At the 300th unlink: the first batch's transaction committed, its chunk
	# files partly removed (those left are unindexed, never served).
	for cmd in rm gc evict; do
		cmd_args "$cmd"
		f0=$FAILS
		restore
		traced -e trace=unlink,unlinkat -e inject=unlink,unlinkat:signal=KILL:when=300 \
			"$MODELFS" "${args[@]}"
		what="$cmd killed at its 300th unlink (exit $RC)"
		[ "$RC" = 137 ] || fail "$cmd under strace was not killed at its 300th unlink (exit $RC)"
		check_store "$what" --snap "$SNAP/index.db" --reasons "$reasons" --known "$WORK/known.json"
		[ "$F_EVICTED" -ge 300 ] && [ "$F_UNINDEXED" -gt 0 ] && [ "${#F_REMOVED[@]}" = 0 ] ||
			fail "$what: $F_EVICTED chunks evicted, $F_UNINDEXED files without a row," \
				"${#F_REMOVED[@]} artifacts removed; expected a batch evicted, part of its files left"
		check_verify "$what"
		[ "$FAILS" -eq "$f0" ] || die "the store is inconsistent after $what"
	done
	# gc removes chunk files without a resident row, once ten minutes old
	UNINDEXED=$F_UNINDEXED
	# The chunk files are hard links of a snapshot made early in this test,
	# which a slow (sanitized, loaded) run can make ten minutes old: the
	# unindexed ones are made young again, so the age rule is what is tested.
	sqlite3 "$STORE/index.db" "SELECT lower(hex(digest)) FROM resident" | sort >"$WORK/indexed.txt"
	find "$STORE/chunks" -type f -printf '%f\n' | sort | comm -23 - "$WORK/indexed.txt" |
		while read -r d; do touch -m "$STORE/chunks/${d:0:2}/$d"; done
	expect_ok mfs gc || fail "gc after the kill failed"
	check_store "gc after $what" --known "$WORK/known.json"
	[ "$F_UNINDEXED" = "$UNINDEXED" ] || fail "gc removed unindexed chunk files younger than ten minutes"
	# (the files are links shared with the snapshot, which is not used again)
	"$PY" -S - "$STORE" <<'EOF'
import os, sqlite3, sys, time
s = sys.argv[1]
db = sqlite3.connect(os.path.join(s, "index.db"))
res = {bytes(d).hex() for (d,) in db.execute("SELECT digest FROM resident")}
old = time.time() - 660
for d in os.listdir(os.path.join(s, "chunks")):
    for n in os.listdir(os.path.join(s, "chunks", d)):
        if n not in res:
            os.utime(os.path.join(s, "chunks", d, n), (old, old))
EOF
	expect_ok mfs gc || fail "gc of the old unindexed chunk files failed"
	check_store "gc of the old unindexed chunk files"
	[ "$F_UNINDEXED" = 0 ] || fail "gc left $F_UNINDEXED chunk files without a row, 11 minutes old"
	check_verify "gc of the old unindexed chunk files"
	expect_ok mfs "${args[@]}" || fail "evict after the kill at its 300th unlink failed"

	# rm killed between the transaction that removed the rows and the unlink
	# of the record (set aside as <record>.removing before that transaction):
	# the artifact must not come back with the next rebuild.
	restore
	traced -P "$STORE/records/$REC_A.removing" -e trace=unlink,unlinkat \
		-e inject=unlink,unlinkat:signal=KILL "$MODELFS" rm "$A_REF"
	[ "$RC" = 137 ] || fail "rm under strace was not killed at the record's unlink (exit $RC)"
	mfs status >/dev/null 2>&1 # the next open settles the record set aside
	[ ! -e "$STORE/records/$REC_A.removing" ] || fail "the record set aside by the killed rm was not settled"
	[ ! -e "$STORE/records/$REC_A" ] || fail "the record of the removed acme/a was put back"
	check_store "rm killed at the unlink of its record" --snap "$SNAP/index.db" --reasons manual \
		--known "$WORK/known.json"
	rm -f "$STORE"/index.db*
	mfs ls --json >"$WORK/ls.json" || fail "ls --json on a rebuilt index failed"
	if grep -qF "\"$A_REF\"" "$WORK/ls.json"; then
		fail "after an rm killed before it removed the record, an index rebuilt from the records" \
			"installs $A_REF again"
	fi
fi

finish

# lib.sh - shared helpers for the mount tests (sourced, not run).
#
# Each test gets its own work directory with a store, a repository directory
# and a mount point; an EXIT trap unmounts whatever is still mounted under it,
# stops the daemons and servers it started (by pid) and removes it. Skips
# (exit 77) without root, /dev/fuse or fusermount3.
#
#   fail MSG / die MSG / finish      checks, as in the command tests
#   mfs ARGS...                      modelfs on the test's store
#   make_repo ORG/NAME FILE [ARGS]   mfs-gen gguf into $REPO/ORG/NAME/FILE
#   publish_trust ORG/NAME           sign with $WORK/k.key and trust k.pub
#   mount_fg [MNT] [OPTS...]         daemon in the foreground, log in
#                                    $WORK/daemon.log, pid in $DAEMON
#   wait_mounted MNT / wait_unmounted MNT     bounded polls
#   unmount MNT                      fusermount3 -u, then wait for the daemon
#   check_log [ALLOW-REGEX]          fail on "error" lines in the daemon log
#   sha_of FILE / published_sha ORG/NAME PATH
#   chunks_consistent                every chunk file hashes to its name
#   q SQL / usage / counter NAME     the index (never created by a query):
#                                    any query, resident bytes, a counter
#   drop_caches / drop_pages FILE    the kernel's page cache dropped (all, or FILE's)
#   pyread FILE|fd:N                 "sha256 HEX" of all its bytes read through
#                                    the daemon, or "errno N open|read"
#   sampler_start / sampler_stop LABEL   usage never over the stored quota
#                                    while it ran (polled every 5 ms)
set -u

: "${MODELFS:?MODELFS must name the modelfs binary}"
: "${MFS_GEN:?MFS_GEN must name the mfs-gen binary}"

skip() { echo "skip: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "mount tests need root"
[ -c /dev/fuse ] || skip "/dev/fuse is missing"
command -v fusermount3 >/dev/null || skip "fusermount3 is missing"
for tool in python3 sqlite3 sha256sum mountpoint; do
	command -v "$tool" >/dev/null || skip "$tool is needed"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mfs-mount.XXXXXX")
STORE="$WORK/store"
REPO="$WORK/repo"
MNT="$WORK/mnt"
mkdir -p "$REPO" "$MNT"
DAEMON=""
PIDS=()
FAILS=0

cleanup() {
	local m
	for m in $(awk -v w="$WORK" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r); do
		fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	chmod -R u+w "$WORK" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK" || exit 1

fail() {
	echo "FAIL: $*" >&2
	FAILS=$((FAILS + 1))
}

die() {
	fail "$@"
	if [ -f "$WORK/daemon.log" ]; then
		echo "--- daemon log (tail)" >&2
		tail -20 "$WORK/daemon.log" >&2
	fi
	echo "$FAILS check(s) failed (stopped early)" >&2
	exit 1
}

finish() {
	if [ "$FAILS" -ne 0 ]; then
		if [ -f "$WORK/daemon.log" ]; then
			echo "--- daemon log (tail)" >&2
			tail -60 "$WORK/daemon.log" >&2
		fi
		echo "$FAILS check(s) failed" >&2
		exit 1
	fi
	echo "ok"
}

mfs() { "$MODELFS" --store "$STORE" "$@"; }

make_repo() {
	local repo=$1 file=$2
	shift 2
	mkdir -p "$REPO/$repo/$(dirname "$file")"
	"$MFS_GEN" gguf "$REPO/$repo/$file" "$@" >/dev/null || die "mfs-gen failed for $repo/$file"
}

publish_trust() {
	[ -f "$WORK/k.key" ] || mfs keygen "$WORK/k" >/dev/null || die "keygen failed"
	mfs publish --key "$WORK/k.key" --repo "$1" --chunk-size "${CHUNK:-1M}" \
		"$REPO/$1" >/dev/null || die "publish $1 failed"
	mfs trust add "$WORK/k.pub" >/dev/null 2>&1 || die "trust add failed"
}

wait_mounted() {
	for _ in $(seq 100); do
		mountpoint -q "$1" && return 0
		sleep 0.1
	done
	return 1
}

wait_unmounted() {
	for _ in $(seq 100); do
		mountpoint -q "$1" || return 0
		sleep 0.1
	done
	return 1
}

# Ready means a new "mount: ready" line in the log (a mount point alone can
# be the dead mount of a killed daemon, which the new one detaches first).
mount_fg() {
	local mnt=${1:-$MNT} before
	[ $# -gt 0 ] && shift
	before=$(grep -c "mount: ready" "$WORK/daemon.log" 2>/dev/null)
	"$MODELFS" --store "$STORE" mount "$mnt" -f "$@" >>"$WORK/daemon.log" 2>&1 &
	DAEMON=$!
	PIDS+=("$DAEMON")
	for _ in $(seq 100); do
		[ "$(grep -c "mount: ready" "$WORK/daemon.log")" -gt "${before:-0}" ] && break
		kill -0 "$DAEMON" 2>/dev/null || break
		sleep 0.1
	done
	wait_mounted "$mnt" || die "mount at $mnt did not become ready"
}

unmount() {
	fusermount3 -u "$1" || fail "fusermount3 -u $1 failed"
	if [ -n "$DAEMON" ]; then
		for _ in $(seq 100); do kill -0 "$DAEMON" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$DAEMON" 2>/dev/null && fail "daemon $DAEMON still running after unmount"
		wait "$DAEMON" 2>/dev/null
		local rc=$?
		[ "$rc" -eq 0 ] || fail "daemon exited $rc after unmount"
		DAEMON=""
	fi
}

check_log() {
	local allow=${1:-^$}
	local bad
	bad=$(grep -i "error" "$WORK/daemon.log" 2>/dev/null | grep -Ev "$allow")
	[ -z "$bad" ] || fail "daemon log has errors: $bad"
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# The digest the publisher signed for PATH of ORG/NAME.
published_sha() {
	python3 - "$REPO/$1/.modelfs/manifest.json" "$2" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
print([f["sha256"] for f in m["files"] if f["path"] == sys.argv[2]][0])
EOF
}

chunks_consistent() {
	local f bad=0
	while IFS= read -r f; do
		[ "$(sha_of "$f")" = "$(basename "$f")" ] || { echo "bad chunk $f" >&2; bad=1; }
	done < <(find "$STORE/chunks" -type f)
	return $bad
}

# ---- the test hub (tests/hub/testhub.py) -------------------------------------
#   start_hub                 serves $WORK/hub; sets HUB (its URL) and HUB_PID
#   hub_put ORG/NAME          copies the published $REPO/ORG/NAME to the hub as
#                             one commit, branch main
#   hub_ctl PATH              POST to /_control/PATH
#   hub_ranges FILE-GLOB      "path range" lines the CDN served since the reset
HUBROOT="$WORK/hub"
start_hub() {
	local hubpy="${MFS_SOURCE_DIR:-$(dirname "$0")/../..}/tests/hub/testhub.py"
	[ -f "$hubpy" ] || skip "tests/hub/testhub.py is missing"
	mkdir -p "$HUBROOT"
	python3 "$hubpy" "$HUBROOT" --ready "$WORK/hub.ready" --lifetime 500 \
		>"$WORK/hub.log" 2>&1 &
	HUB_PID=$!
	PIDS+=("$HUB_PID")
	for _ in $(seq 100); do [ -f "$WORK/hub.ready" ] && break; sleep 0.1; done
	[ -f "$WORK/hub.ready" ] || die "test hub did not start: $(cat "$WORK/hub.log")"
	HUB="http://127.0.0.1:$(cut -d' ' -f2 "$WORK/hub.ready")"
}

hub_put() {
	local commit
	commit=$(printf '%s' "$1-$RANDOM" | sha1sum | cut -c1-40)
	mkdir -p "$HUBROOT/$1/$commit"
	cp -a "$REPO/$1/." "$HUBROOT/$1/$commit/"
	printf '{"branches": {"main": "%s"}}\n' "$commit" >"$HUBROOT/$1/refs.json"
}

hub_ctl() { python3 -c "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], data=b'', method='POST')).read()" "$HUB/_control/$1"; }

hub_ranges() {
	python3 - "$HUB/_control/stats" "$1" <<'PYEOF'
import fnmatch, json, sys, urllib.request
s = json.load(urllib.request.urlopen(sys.argv[1]))
for k, n in s["ranges"].items():
    parts = k.split(" ")
    if len(parts) != 3 or parts[0] != "cdn":
        continue  # the hub's own redirects carry no bytes
    role, path, rng = parts
    if fnmatch.fnmatch(path, sys.argv[2]):
        for _ in range(n):
            print(path, rng)
PYEOF
}

# ---- the index, reading through the daemon, watching the quota -------------

# q SQL: a query of the index (never creating one: sqlite3 would)
q() {
	[ -f "$STORE/index.db" ] || { echo "no index.db"; return 1; }
	sqlite3 "$STORE/index.db" "$1"
}
usage() { q 'SELECT coalesce(sum(size), 0) FROM resident'; }
counter() { q "SELECT coalesce((SELECT value FROM counters WHERE name = '$1'), 0)"; }

# Drops the kernel's cached pages of FILE so the next read reaches the daemon.
drop_pages() {
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)' "$1" || fail "cannot drop the cached pages of $1"
}

# Drops the kernel's caches (so reads reach the daemon and chunk files the disk).
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}

# pyread FILE|fd:N - "sha256 HEX" when the whole file reads, else "errno N
# open|read". The file's cached pages are dropped first, so the bytes come
# from the daemon and not from the kernel's page cache. fd:N reads an
# inherited descriptor (no new open, so no new pin).
pyread() {
	python3 - "$1" <<'EOF'
import hashlib, os, sys
arg = sys.argv[1]
try:
    fd = int(arg[3:]) if arg.startswith("fd:") else os.open(arg, os.O_RDONLY)
except OSError as e:
    print("errno", e.errno, "open")
    sys.exit(0)
try:
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    h, off = hashlib.sha256(), 0
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            break
        h.update(b)
        off += len(b)
    print("sha256", h.hexdigest())
except OSError as e:
    print("errno", e.errno, "read")
EOF
}

# The sampler polls the index (one read transaction per sample) and records
# every moment the resident usage was over the stored quota.
SAMPLER=""
sampler_start() {
	rm -f "$WORK/sampler.stop" "$WORK/sampler.out"
	cat >"$WORK/sampler.py" <<'EOF'
import os, sqlite3, sys, time
db, stop, out = sys.argv[1:4]
con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
worst, n, over = 0, 0, []
while not os.path.exists(stop):
    try:
        u, qb = con.execute("SELECT (SELECT coalesce(sum(size), 0) FROM resident),"
                            " (SELECT coalesce((SELECT value FROM meta WHERE key = 'quota_bytes'), 0))").fetchone()
    except sqlite3.Error:
        time.sleep(0.01)
        continue
    n += 1
    if qb > 0 and u > qb:
        over.append("%.3f usage %d quota %d" % (time.time(), u, qb))
        worst = max(worst, u - qb)
    time.sleep(0.005)
with open(out, "w") as f:
    f.write("samples %d over %d worst %d\n" % (n, len(over), worst))
    for line in over[:20]:
        f.write(line + "\n")
EOF
	python3 "$WORK/sampler.py" "$STORE/index.db" "$WORK/sampler.stop" "$WORK/sampler.out" &
	SAMPLER=$!
	PIDS+=("$SAMPLER")
}
sampler_stop() {
	touch "$WORK/sampler.stop"
	wait "$SAMPLER" 2>/dev/null
	SAMPLER=""
	read -r _ n _ over _ worst <"$WORK/sampler.out" || { fail "$1: the sampler left no result"; return; }
	echo "$1: $n samples of the usage"
	[ "$n" -gt 0 ] || fail "$1: the sampler never read the index"
	[ "$over" -eq 0 ] || fail "$1: the usage was over the quota in $over of $n samples" \
		"(worst by $worst bytes): $(tail -n +2 "$WORK/sampler.out" | head -5 | tr '\n' ';')"
}

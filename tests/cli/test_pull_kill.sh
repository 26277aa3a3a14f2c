#!/bin/bash
# test_pull_kill.sh - crash safety of pull (product.md §6): a 64 MiB model in
# 1 MiB chunks is pulled again and again, each time killed with SIGKILL after
# a random delay. After every kill the store must be consistent: the SQLite
# index passes integrity_check, every chunk file hashes to its name, and no
# resident row lacks its chunk file. A last pull must then finish, fetch no
# more than what was missing, and leave a store that verify accepts.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TRIES=${MFS_KILL_TRIES:-20}
MAX_TRIES=$((TRIES * 3))

mkdir -p "$REPO/acme/big"
"$MFS_GEN" gguf "$REPO/acme/big/big-Q4_K_M.gguf" --tensors 16 --tensor-bytes 4194304 >/dev/null
SIZE=$(stat -c %s "$REPO/acme/big/big-Q4_K_M.gguf")
[ "$SIZE" -ge $((60 << 20)) ] || die "test model is only $SIZE bytes"
publish acme/big --chunk-size 1048576
grep -q '"chunk_size":1048576' "$REPO/acme/big/.modelfs/manifest.json" || die "publish ignored --chunk-size"

fresh_store() {
	chmod -R u+w "$STORE" 2>/dev/null || true
	rm -rf "$STORE"
	mfs trust add "$WORK/k.pub" --prefix acme/ >/dev/null || die "trust add failed"
}

store_consistent() {
	local what=$1 ic f
	[ -d "$STORE" ] || return 0
	if [ -f "$STORE/index.db" ]; then
		ic=$(sqlite3 "$STORE/index.db" 'PRAGMA integrity_check' 2>&1) || ic="sqlite3 failed: $ic"
		[ "$ic" = ok ] || fail "$what: integrity_check says: $ic"
	fi
	# only finished chunk files, named by their digest, live under chunks/
	while IFS= read -r -d '' f; do
		[[ "$(basename "$f")" =~ ^[0-9a-f]{64}$ ]] || fail "$what: stray file in chunks/: $f"
	done < <(find "$STORE/chunks" -type f -print0 2>/dev/null)
	assert_chunks_consistent "$what"
}

# artifact resident bytes per ls --json (0 when not admitted yet)
resident_now() {
	mfs ls --json | python3 -c '
import json, sys
a = json.load(sys.stdin)
print(sum(x["resident_bytes"] for x in a))'
}

fetched_now() {
	mfs status --json | python3 -c '
import json, sys
print(json.load(sys.stdin)["counters"].get("fetched_bytes", 0))'
}

fresh_store
tries=0 killed=0 completed=0 last_killed=0
while [ "$tries" -lt "$MAX_TRIES" ]; do
	if [ "$tries" -ge "$TRIES" ] && [ "$last_killed" = 1 ] && [ "$killed" -ge $((TRIES / 2)) ]; then
		break
	fi
	tries=$((tries + 1))
	delay_ms=$((RANDOM % 301))
	# the binary itself, not a function wrapping it: $! must be modelfs
	"$MODELFS" pull --endpoint "$ENDPOINT" acme/big >/dev/null 2>"$WORK/pull.err" &
	pid=$!
	sleep "$(printf '0.%03d' "$delay_ms")"
	kill -9 "$pid" 2>/dev/null || true
	rc=0
	{ wait "$pid"; } 2>/dev/null || rc=$?
	case $rc in
	137) killed=$((killed + 1)); last_killed=1 ;;
	0) completed=$((completed + 1)); last_killed=0 ;;
	*) fail "try $tries: pull exited $rc (not killed): $(cat "$WORK/pull.err")"; last_killed=0 ;;
	esac
	store_consistent "try $tries (delay ${delay_ms} ms, exit $rc)"
	[ "$FAILS" -eq 0 ] || die "the store is inconsistent after try $tries"
	# a pull killed after its last chunk leaves nothing to resume
	if [ "$rc" = 137 ] && [ "$(resident_now)" -ge "$SIZE" ]; then
		last_killed=0
	fi
	if [ "$last_killed" = 0 ]; then
		# finished before the kill: start over so later kills still land mid-pull
		fresh_store
	fi
done
echo "tries: $tries, killed mid-pull: $killed, finished before the kill: $completed"
[ "$killed" -ge $((TRIES / 2)) ] || die "only $killed of $tries pulls were killed mid-way; the test shows nothing"
[ "$last_killed" = 1 ] || die "no interrupted pull to resume from"

RESIDENT_BEFORE=$(resident_now) || die "ls --json failed after the kills"
FETCHED_BEFORE=$(fetched_now) || die "status --json failed after the kills"
[ "$RESIDENT_BEFORE" -lt "$SIZE" ] || die "nothing was missing before the last pull"
echo "before the last pull: resident $RESIDENT_BEFORE of $SIZE, fetched_bytes $FETCHED_BEFORE"

expect_ok mfs pull --endpoint "$ENDPOINT" acme/big || die "the pull after the kills did not finish"
FETCHED_AFTER=$(fetched_now)
RESIDENT_AFTER=$(resident_now)
[ "$RESIDENT_AFTER" -eq "$SIZE" ] || fail "after the last pull $RESIDENT_AFTER of $SIZE bytes are resident"
inc=$((FETCHED_AFTER - FETCHED_BEFORE))
[ "$inc" -le $((SIZE - RESIDENT_BEFORE)) ] ||
	fail "the last pull fetched $inc bytes, more than the $((SIZE - RESIDENT_BEFORE)) that were missing"
[ "$inc" -ge 0 ] || fail "fetched_bytes went down: $FETCHED_BEFORE -> $FETCHED_AFTER"

expect_ok mfs verify || true
grep -qE "0 bad chunk\(s\), 0 unrepaired" <<<"$OUT" || fail "verify after the kills: $OUT"
store_consistent "after the final pull"
ls_json
json_check "len(a) == 1 and a[0]['state'] == 'resident' and a[0]['files'][0]['verified'] is True" \
	"the artifact is not fully resident and verified"

# the chunks reassemble the original file
python3 - "$STORE" "$REPO/acme/big/.modelfs/manifest.json" "$REPO/acme/big/big-Q4_K_M.gguf" <<'EOF' || fail "the cached chunks do not reassemble the original"
import hashlib, json, os, sys
store, man, orig = sys.argv[1:]
f = json.load(open(man))["files"][0]
h = hashlib.sha256()
for c in f["chunks"]:
    h.update(open(os.path.join(store, "chunks", c[:2], c), "rb").read())
assert h.hexdigest() == f["sha256"] == hashlib.sha256(open(orig, "rb").read()).hexdigest()
EOF

finish

#!/usr/bin/env bash
# test_hostile_listing.sh - a hub's file listing cannot make `add` eat memory
# (issue 9, finding 11: 16 listing pages drove add to 1.1 GB).
#
# The test hub answers the tree API with, in turn: one 64 MiB page, a page
# of a million tiny JSON values, pages of 2,000 files with 1,000-byte paths
# linking on forever, empty pages linking on forever, and slow pages linking
# on forever (the listing's own time limit). Each time `add`
# fails with an error naming the limit it hit (docs/network.md), admits
# nothing, and its peak RSS stays under 64 MiB. An honest listing still works.
set -uo pipefail
: "${MODELFS:?} ${MFS_GEN:?} ${MFS_SOURCE_DIR:?}"
command -v python3 >/dev/null || { echo "skip: python3 is needed for the test hub"; exit 77; }
work=$(mktemp -d)
hub_pid=
cleanup() { [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
die() { echo "FAIL: $*" >&2; exit 1; }
cd "$work" || exit 1
RSS_MAX_KB=$((64 * 1024))
# Under AddressSanitizer freed memory is held in a quarantine (256 MiB by
# default) and every allocation carries shadow and red zones: a small
# quarantine keeps the figure about what modelfs holds, and the bound is
# doubled for the rest.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"
[ "${MFS_SANITIZED:-0}" = 1 ] && RSS_MAX_KB=$((RSS_MAX_KB * 2))

C1=1111111111111111111111111111111111111111
mkdir -p root/hf/big/$C1
"$MFS_GEN" gguf root/hf/big/$C1/b-Q4_K_M.gguf --tensors 2 --tensor-bytes 100000 --seed 1 >/dev/null
echo "{\"branches\": {\"main\": \"$C1\"}}" > root/hf/big/refs.json
python3 "$MFS_SOURCE_DIR/tests/hub/testhub.py" root --ready ready --lifetime 400 >hub.log 2>&1 &
hub_pid=$!
for _ in $(seq 100); do [ -s ready ] && break; sleep 0.1; done
[ -s ready ] || die "test hub did not start: $(cat hub.log)"
read -r _ HP _ < ready
EP=http://127.0.0.1:$HP
ctl() { curl -s -X POST "$EP/_control/$1" >/dev/null; }
export MODELFS_STORE=$work/store
"$MODELFS" trust hub --prefix hf/ >/dev/null || die "trust hub failed"
count() { "$MODELFS" ls --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

# peak_rss CMD...: runs CMD; its exit status in $rc, peak RSS (KiB) in $rss.
peak_rss() {
	python3 - "$@" >rss.out <<'PYEOF'
import resource, subprocess, sys
with open("err", "w") as e:
    p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=e, timeout=300)
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PYEOF
	read -r rc rss <rss.out
}

for case in "hugepage:pages are at most 4 MiB" "manyvalues:more than 200000 JSON values" \
	"bigpages:larger than 16 MiB" "endless:more than 1000 pages"; do
	name=${case%%:*}
	want=${case#*:}
	ctl reset
	ctl "fault?name=$name&path=tree&count=0"
	t0=$(date +%s)
	peak_rss "$MODELFS" add --endpoint "$EP" hf/big
	[ "$rc" != 0 ] || fail "$name: add succeeded"
	grep -q "$want" err || fail "$name: error '$(cat err)' does not say '$want'"
	[ "$rss" -lt "$RSS_MAX_KB" ] || fail "$name: peak RSS ${rss} KiB (bound $RSS_MAX_KB KiB)"
	echo "$name: failed in $(( $(date +%s) - t0 )) s, peak RSS $((rss / 1024)) MiB: $(cat err)"
done
# Pages that each come just in time, forever: the listing as a whole ends
# after 10 request deadlines (here 10 s).
ctl reset
ctl "fault?name=slowpages&path=tree&count=0"
t0=$(date +%s)
peak_rss env MODELFS_TIMEOUT=1 "$MODELFS" add --endpoint "$EP" hf/big
el=$(( $(date +%s) - t0 ))
[ "$rc" != 0 ] || fail "slowpages: add succeeded"
grep -q "took longer than 10 s" err || fail "slowpages: error '$(cat err)' does not name the listing's time limit"
[ "$el" -le 20 ] || fail "slowpages: add took $el s (bound 20 s)"
echo "slowpages: failed in $el s: $(cat err)"
[ "$(count)" = 0 ] || fail "something was admitted from a hostile listing"

ctl reset
peak_rss "$MODELFS" add --endpoint "$EP" hf/big
[ "$rc" = 0 ] || fail "an honest listing failed: $(cat err)"
[ "$(count)" = 1 ] || fail "the honest add did not admit the model"
echo "honest: peak RSS $((rss / 1024)) MiB"
[ "$FAILS" -eq 0 ] || { echo "$FAILS check(s) failed" >&2; exit 1; }
echo ok

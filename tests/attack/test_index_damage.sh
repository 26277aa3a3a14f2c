#!/bin/bash
# test_index_damage.sh - index.db damaged in place under a live mount
# (issue 9, finding 10).
#
# Attack: index.db truncated while mounted made every other command wait
# about 1,000 s and fail, and the mount's tree could go empty. Here the index
# is damaged in place (same file, so the mount's check for a replaced index
# does not see it) three ways: truncated to 0 bytes, truncated to half, its
# header overwritten with garbage; each while the mount is serving and
# readers read through it. After each:
#   - the mount's tree never goes empty (polled while it recovers), and the
#     readers never get a wrong byte;
#   - `ls`, `status` and `add` from other processes complete within a bound
#     (timeout 30 s each): they find the damage, set the index aside and
#     rebuild it, and answer right;
#   - within a few seconds the daemon serves from a sound index again (its
#     mount registration is back), every file reads with its published
#     sha256, and the damaged copies are in quarantine/.
. "$(dirname "$0")/../mount/lib.sh"

CHUNK=1M
make_repo org/one One-Q4_K_M.gguf --tensors 4 --tensor-bytes 800000 --seed 71
make_repo org/two Two-Q8_0.gguf --tensors 3 --tensor-bytes 800000 --seed 72
for r in org/one org/two; do
	publish_trust "$r"
	mfs add --endpoint "file://$REPO" "$r" >/dev/null 2>"$WORK/add.err" || die "add $r: $(cat "$WORK/add.err")"
done
mount_fg
F1=$(find "$MNT/org" -path '*one@*' -name '*.gguf' | head -1)
F2=$(find "$MNT/org" -path '*two@*' -name '*.gguf' | head -1)
[ -n "$F1" ] && [ -n "$F2" ] || die "files not under the mount"
W1="sha256 $(published_sha org/one One-Q4_K_M.gguf)"
W2="sha256 $(published_sha org/two Two-Q8_0.gguf)"
[ "$(pyread "$F1")" = "$W1" ] || die "first read of One is wrong"

# Readers through the mount for the whole test: any wrong byte is recorded.
STOP="$WORK/stop"
(
	while [ ! -e "$STOP" ]; do
		out=$(pyread "$F1")
		case "$out" in
		"$W1" | errno*) ;;
		*) echo "wrong: $out" >>"$WORK/wrong" ;;
		esac
	done
) &
READER=$!
PIDS+=("$READER")

# tree_stays LABEL SECONDS: the mount's org/ directory never empty meanwhile
tree_stays() {
	local end=$((SECONDS + $2)) n
	while [ $SECONDS -lt $end ]; do
		n=$(ls "$MNT/org" 2>/dev/null | wc -l)
		[ "$n" -ge 2 ] || { fail "$1: the mount shows $n repositories"; return; }
		sleep 0.1
	done
}

# mounted_in_index: the daemon's mount registration is in the current index
registered() { [ "$(q "SELECT count(*) FROM mounts" 2>/dev/null)" -ge 1 ] 2>/dev/null; }

N=0
damage() {
	local label=$1
	N=$((N + 1))
	local size
	size=$(stat -c %s "$STORE/index.db")
	case "$label" in
	zero) truncate -s 0 "$STORE/index.db" ;;
	half) truncate -s $((size / 2)) "$STORE/index.db" ;;
	garbage) head -c 4096 /dev/urandom | dd of="$STORE/index.db" conv=notrunc status=none ;;
	esac
	tree_stays "$label" 3
	local t0=$SECONDS
	timeout 30 "$MODELFS" --store "$STORE" ls >"$WORK/ls.out" 2>"$WORK/ls.err" ||
		fail "$label: ls failed or hung ($?): $(head -3 "$WORK/ls.err")"
	grep -q "org/one@" "$WORK/ls.out" && grep -q "org/two@" "$WORK/ls.out" ||
		fail "$label: ls does not list both artifacts: $(cat "$WORK/ls.out")"
	timeout 30 "$MODELFS" --store "$STORE" status >/dev/null 2>"$WORK/st.err" ||
		fail "$label: status failed or hung: $(head -3 "$WORK/st.err")"
	echo "$label: ls and status answered in $((SECONDS - t0)) s"
	tree_stays "$label (after)" 2
	local ok=0
	for _ in $(seq 100); do
		registered && { ok=1; break; }
		sleep 0.1
	done
	[ "$ok" = 1 ] || fail "$label: the daemon did not register in the rebuilt index"
	[ "$(pyread "$F1")" = "$W1" ] || fail "$label: One reads wrong after"
	[ "$(pyread "$F2")" = "$W2" ] || fail "$label: Two reads wrong after"
}

damage zero
damage half
# An add while the index is damaged: it recovers the index and admits.
make_repo org/three Three-Q4_K_M.gguf --tensors 2 --tensor-bytes 500000 --seed 73
publish_trust org/three
head -c 4096 /dev/urandom | dd of="$STORE/index.db" conv=notrunc status=none
timeout 30 "$MODELFS" --store "$STORE" add --endpoint "file://$REPO" org/three >/dev/null 2>"$WORK/add.err" ||
	fail "add with a damaged index failed or hung: $(head -3 "$WORK/add.err")"
for _ in $(seq 100); do
	[ -n "$(find "$MNT/org" -maxdepth 1 -name 'three@*' 2>/dev/null)" ] && break
	sleep 0.1
done
[ -n "$(find "$MNT/org" -maxdepth 1 -name 'three@*')" ] || fail "the mount does not show org/three"
damage garbage

touch "$STOP"
wait "$READER"
[ -s "$WORK/wrong" ] && fail "readers got wrong bytes: $(head -3 "$WORK/wrong")"
nq=$(find "$STORE/quarantine" -name 'index.db*' | wc -l)
echo "quarantine: $nq index files set aside"
[ "$nq" -ge 1 ] || fail "no damaged index was set aside"
unmount "$MNT"
finish

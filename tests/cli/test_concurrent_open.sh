#!/bin/bash
# test_concurrent_open.sh - several commands opening a store whose index does
# not exist yet, at the same moment: each creates or waits, none takes the
# other's half-made index for a corrupt one (which would set it aside and
# lose what the other had admitted). Ten rounds of four parallel `add`s on a
# new store: every artifact installed, nothing in quarantine/.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for r in a b c d; do
	make_gguf_repo acme/$r $r-Q4_K_M.gguf --tensors 2 --tensor-bytes 20000 --seed $((RANDOM + 1))
	publish acme/$r
done

for round in $(seq 10); do
	rm -rf "$MODELFS_STORE"
	mfs trust add "$WORK/k.pub" --prefix acme/ >/dev/null 2>&1 || die "trust add failed"
	pids=()
	for r in a b c d; do
		mfs add --endpoint "file://$REPO" acme/$r >/dev/null 2>"$WORK/add-$r.err" &
		pids+=($!)
	done
	i=0
	for r in a b c d; do
		wait "${pids[$i]}" || fail "round $round: add acme/$r failed: $(cat "$WORK/add-$r.err")"
		i=$((i + 1))
	done
	ls_json
	n=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/ls.json")
	[ "$n" -eq 4 ] || fail "round $round: $n of 4 artifacts installed: $(cat "$WORK"/add-*.err)"
	q=$(find "$MODELFS_STORE/quarantine" -type f | wc -l)
	[ "$q" -eq 0 ] || fail "round $round: the index was set aside: $(ls "$MODELFS_STORE/quarantine")"
	grep -h "rebuilding" "$WORK"/add-*.err && fail "round $round: an index was taken for corrupt"
	assert_chunks_consistent
done
finish

#!/bin/bash
# test_local_fifo.sh - FIFOs, links and other non-regular files in a file://
# repository cannot block or mislead (issue 9, finding 9: a FIFO blocked
# daemon threads forever).
#
# A FIFO beside the published files, a FIFO in place of the signed manifest,
# and a symbolic link out of the tree: add refuses each within a bound with
# a message naming the file and what it is, and admits nothing. A FIFO that
# replaces a file after it was admitted: a read through the mount and a pull
# fail within a bound with EIO / a clear error; the daemon stays responsive
# (another file reads fine and it unmounts cleanly).
. "$(dirname "$0")/../mount/lib.sh"

CHUNK=1M
EP="file://$REPO"
count() { mfs ls --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
bounded_fail() { # bounded_fail REGEX CMD...: fails within 20 s with REGEX in stderr
	local re=$1 rc
	shift
	timeout 20 "$@" >"$WORK/out" 2>"$WORK/err"
	rc=$?
	[ "$rc" = 124 ] && { fail "'$*' still blocked after 20 s"; return; }
	[ "$rc" != 0 ] || { fail "'$*' succeeded"; return; }
	grep -Eq "$re" "$WORK/err" || fail "'$*': error '$(cat "$WORK/err")' does not match '$re'"
}

# ---- refused at add ---------------------------------------------------------
make_repo org/fifo F-Q4_K_M.gguf --tensors 2 --tensor-bytes 200000 --seed 1
publish_trust org/fifo
mkfifo "$REPO/org/fifo/extra.gguf"
bounded_fail "extra.gguf' is a FIFO" "$MODELFS" --store "$STORE" add --endpoint "$EP" org/fifo

make_repo org/man M-Q4_K_M.gguf --tensors 2 --tensor-bytes 200000 --seed 2
publish_trust org/man
rm "$REPO/org/man/.modelfs/manifest.json"
mkfifo "$REPO/org/man/.modelfs/manifest.json"
bounded_fail "manifest.json' in a local repository: it is a FIFO" "$MODELFS" --store "$STORE" add --endpoint "$EP" org/man

make_repo org/link L-Q4_K_M.gguf --tensors 2 --tensor-bytes 200000 --seed 3
publish_trust org/link
ln -s /etc/passwd "$REPO/org/link/passwd"
bounded_fail "'passwd' is a symbolic link" "$MODELFS" --store "$STORE" add --endpoint "$EP" org/link
[ "$(count)" = 0 ] || fail "something was admitted from a repository holding a FIFO or a link"

# ---- a FIFO swapped in after admission --------------------------------------
make_repo org/swap S-Q4_K_M.gguf --tensors 4 --tensor-bytes 1000000 --seed 4
make_repo org/good G-Q4_K_M.gguf --tensors 2 --tensor-bytes 300000 --seed 5
publish_trust org/swap
publish_trust org/good
REF=$(mfs add --endpoint "$EP" org/swap 2>"$WORK/err") || die "add org/swap: $(cat "$WORK/err")"
GOOD=$(mfs add --endpoint "$EP" org/good 2>"$WORK/err") || die "add org/good: $(cat "$WORK/err")"
rm "$REPO/org/swap/S-Q4_K_M.gguf"
mkfifo "$REPO/org/swap/S-Q4_K_M.gguf"
bounded_fail "is a FIFO" "$MODELFS" --store "$STORE" pull --endpoint "$EP" org/swap

mount_fg
# Block 512 lies in chunk 2, which add did not fetch.
t0=$(date +%s)
timeout 20 dd if="$MNT/$REF" of=/dev/null bs=4k count=1 skip=512 iflag=direct 2>"$WORK/dd.err"
rc=$?
[ "$rc" = 124 ] && fail "a read of the FIFO-backed file blocked for 20 s"
[ "$rc" != 0 ] || fail "a read of the FIFO-backed file succeeded"
grep -q "Input/output error" "$WORK/dd.err" || fail "the read did not fail with EIO: $(cat "$WORK/dd.err")"
echo "FIFO-backed read: failed after $(( $(date +%s) - t0 )) s"
grep -q "is a FIFO" "$WORK/daemon.log" || fail "the daemon log does not say why"
[ "$(sha_of "$MNT/$GOOD")" = "$(sha_of "$REPO/org/good/G-Q4_K_M.gguf")" ] ||
	fail "another file does not read right after the FIFO"
unmount "$MNT"
finish

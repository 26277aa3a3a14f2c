#!/bin/bash
# test_store_perms.sh - a second local user against the store (issue 9,
# finding 6).
#
# Attack: the store was created 0755 with 0444 chunk files, so another
# local user read a gated model's bytes, fetched with root's token, straight
# from the cache. Here root fills a store from a gated hub repository (with
# the token) and from a signed local one, then a second local user
# (mfs-attacker, created for the test and removed by the EXIT trap) tries to
# read every file of the store by its exact path, to list it, to read the
# files through the mount, and through the daemon's open descriptors in
# /proc. Every attempt must fail. The store's parent is opened to everyone,
# so the store's own modes are what stops the attacker.
#
# Then: an existing store left open to others (as older versions made it)
# is made private again by the next command, never widened; and the
# documented group option (--group NAME) shares the store with one group (a
# member reads a chunk, including one fetched after sharing) and still not
# with the attacker.
. "$(dirname "$0")/../mount/lib.sh"

for tool in useradd userdel groupadd groupdel setpriv curl; do
	command -v "$tool" >/dev/null || skip "$tool is needed"
done
ATT=mfs-attacker
FRIEND=mfs-friend
GRP=mfs-share
for u in $ATT $FRIEND; do
	id "$u" >/dev/null 2>&1 && skip "user $u exists already (left by another run?)"
done
getent group $GRP >/dev/null && skip "group $GRP exists already"
users_gone() {
	userdel "$ATT" 2>/dev/null
	userdel "$FRIEND" 2>/dev/null
	groupdel "$GRP" 2>/dev/null
}
trap 'users_gone; cleanup' EXIT
groupadd "$GRP" || die "groupadd failed"
useradd -M -N -g users -s /usr/sbin/nologin "$ATT" || die "useradd $ATT failed"
useradd -M -N -g users -G "$GRP" -s /usr/sbin/nologin "$FRIEND" || die "useradd $FRIEND failed"
as_att() { setpriv --reuid="$ATT" --regid=users --clear-groups "$@"; }
as_friend() { setpriv --reuid="$FRIEND" --regid=users --init-groups "$@"; }
chmod 0755 "$WORK"

# --- a store with a gated hub model (fetched with a token) and a signed one ---
C3=cccccccccccccccccccccccccccccccccccccccc
mkdir -p "$WORK/hubroot/hf/gated/$C3"
"$MFS_GEN" gguf "$WORK/hubroot/hf/gated/$C3/g-Q4_K_M.gguf" --tensors 3 --tensor-bytes 600000 \
	--seed 61 >/dev/null || die "mfs-gen failed"
echo "{\"branches\": {\"main\": \"$C3\"}}" >"$WORK/hubroot/hf/gated/refs.json"
touch "$WORK/hubroot/hf/gated/gated"
python3 "$MFS_SOURCE_DIR/tests/hub/testhub.py" "$WORK/hubroot" --token s3cret \
	--ready "$WORK/ready" --lifetime 300 >"$WORK/hub.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do [ -s "$WORK/ready" ] && break; sleep 0.1; done
[ -s "$WORK/ready" ] || die "test hub did not start: $(cat "$WORK/hub.log")"
read -r _ HP _ <"$WORK/ready"
EP=http://127.0.0.1:$HP

mfs trust hub --prefix hf/ >/dev/null || die "trust hub failed"
HF_TOKEN=s3cret mfs pull --endpoint "$EP" hf/gated >/dev/null 2>"$WORK/pull.err" ||
	die "pull of the gated repo failed: $(cat "$WORK/pull.err")"
make_repo org/sig m.gguf --tensors 3 --tensor-bytes 500000 --seed 62
publish_trust org/sig
mfs pull --endpoint "file://$REPO" org/sig >/dev/null 2>&1 || die "pull org/sig failed"

[ "$(stat -c %a "$STORE")" = 700 ] || fail "new store is $(stat -c %a "$STORE"), not 700"
for d in chunks records manifests tmp quarantine partial; do
	[ "$(stat -c %a "$STORE/$d")" = 700 ] || fail "$d/ is $(stat -c %a "$STORE/$d"), not 700"
done
[ "$(stat -c %a "$STORE/index.db")" = 600 ] || fail "index.db is $(stat -c %a "$STORE/index.db")"
bad=$(find "$STORE/chunks" -type f ! -perm 0400 | head -3)
[ -z "$bad" ] || fail "chunk files not 0400: $bad"
nchunks=$(find "$STORE/chunks" -type f | wc -l)
[ "$nchunks" -gt 2 ] || die "only $nchunks chunk files: nothing to attack"

# attacker_reads_nothing LABEL: every file of the store, by its exact path
attacker_reads_nothing() {
	local f n=0 got=0
	while IFS= read -r f; do
		n=$((n + 1))
		if as_att cat "$f" >/dev/null 2>&1; then
			got=$((got + 1))
			fail "$1: $ATT read $f"
		fi
	done < <(find "$STORE" -type f)
	as_att ls "$STORE" >/dev/null 2>&1 && fail "$1: $ATT listed the store"
	as_att ls "$STORE/chunks" >/dev/null 2>&1 && fail "$1: $ATT listed chunks/"
	echo "$1: $ATT tried $n files of the store, read $got"
	[ "$n" -gt "$nchunks" ] || fail "$1: only $n files tried"
}
# the check can fail: root reads what the attacker may not
cat "$(find "$STORE/chunks" -type f | head -1)" >/dev/null || die "root cannot read a chunk"
attacker_reads_nothing "private store"

# --- through another path: the mount, and the daemon's descriptors -----------
mount_fg
MF=$(find "$MNT/hf" -path '*gated@*' -name 'g-Q4_K_M.gguf' | head -1)
[ -n "$MF" ] || die "the gated file is not under the mount"
exec 7<"$MF"   # the daemon now has chunk files open while this is read
head -c 1000000 <&7 >/dev/null
as_att cat "$MF" >/dev/null 2>&1 && fail "$ATT read the gated file through the mount"
as_att ls "$MNT" >/dev/null 2>&1 && fail "$ATT listed the mount"
leaked=0
for fd in /proc/"$DAEMON"/fd/*; do
	as_att cat "$fd" >/dev/null 2>&1 && leaked=$((leaked + 1))
done
[ "$leaked" = 0 ] || fail "$ATT read $leaked of the daemon's open files through /proc"
exec 7<&-
unmount "$MNT"

# --- a store left open to others is made private, never widened --------------
chmod -R go+rX "$STORE"
as_att cat "$(find "$STORE/chunks" -type f | head -1)" >/dev/null 2>&1 ||
	die "the setup did not open the store to others"
mfs ls >/dev/null 2>&1 || fail "ls on the opened store failed"
[ "$(stat -c %a "$STORE")" = 700 ] || fail "an open store stayed $(stat -c %a "$STORE")"
attacker_reads_nothing "store that was open to others"

# --- shared with a group: members read, others still do not -----------------
mfs --group "$GRP" ls >/dev/null 2>"$WORK/share.err" || fail "--group: $(cat "$WORK/share.err")"
[ "$(stat -c '%a %G' "$STORE")" = "2750 $GRP" ] || fail "shared store is $(stat -c '%a %G' "$STORE")"
c1=$(find "$STORE/chunks" -type f | head -1)
as_friend cat "$c1" >/dev/null 2>&1 || fail "$FRIEND (in $GRP) cannot read a chunk of the shared store"
make_repo org/late l.gguf --tensors 2 --tensor-bytes 300000 --seed 63
publish_trust org/late
mfs pull --endpoint "file://$REPO" org/late >/dev/null 2>&1 || fail "pull org/late failed"
newest=$(find "$STORE/chunks" -type f -newer "$c1" | head -1)
[ -n "$newest" ] || fail "no chunk fetched after sharing"
[ -z "$newest" ] || [ "$(stat -c '%a %G' "$newest")" = "440 $GRP" ] ||
	fail "a chunk fetched after sharing is $(stat -c '%a %G' "$newest")"
[ -z "$newest" ] || as_friend cat "$newest" >/dev/null 2>&1 || fail "$FRIEND cannot read a new chunk"
mfs ls >/dev/null 2>&1 || fail "ls on the shared store failed"
[ "$(stat -c %a "$STORE")" = 2750 ] || fail "a later command changed the shared store to $(stat -c %a "$STORE")"
attacker_reads_nothing "shared store"
finish

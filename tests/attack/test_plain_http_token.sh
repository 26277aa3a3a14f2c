#!/usr/bin/env bash
# test_plain_http_token.sh - the token and URL credentials never go over
# plain HTTP to a host that is not this machine (issue 9, finding 7: two
# requests carrying the token went out before hub-checksum mode was refused).
#
# A private network namespace holds a second address (10.213.7.1, on its own
# loopback device: nothing leaves this machine, nothing outside the namespace
# changes). The test hub listens there; to modelfs it is an ordinary remote
# host reached by plain HTTP. With HF_TOKEN set and credentials in the URL:
# hub-checksum mode is refused, a gated repository is refused with a message
# that says the token was not sent, a signed repository is admitted on its
# signature; the hub counts zero Authorization headers over all of it. A
# control hub on 127.0.0.1 in the same namespace does receive the token, so
# the counter can see one.
set -uo pipefail
: "${MODELFS:?} ${MFS_GEN:?} ${MFS_SOURCE_DIR:?}"
skip() { echo "skip: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "a network namespace needs root"
command -v ip >/dev/null || skip "ip (iproute2) is needed"
command -v python3 >/dev/null || skip "python3 is needed for the test hub"
command -v curl >/dev/null || skip "curl is needed"
NS=mfs-plain-$$
ADDR=10.213.7.1
work=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
die() { echo "FAIL: $*" >&2; exit 1; }
cd "$work" || exit 1
ip netns add "$NS" 2>/dev/null || skip "cannot create a network namespace"
ip netns exec "$NS" ip link set lo up || die "lo up failed"
ip netns exec "$NS" ip addr add "$ADDR/32" dev lo || die "cannot add $ADDR"
inns() { ip netns exec "$NS" "$@"; }

C1=1111111111111111111111111111111111111111
C2=2222222222222222222222222222222222222222
C3=3333333333333333333333333333333333333333
mkdir -p root/hf/open/$C1 root/acme/signed/$C2 root/hf/gated/$C3
"$MFS_GEN" gguf root/hf/open/$C1/o-Q4_K_M.gguf --tensors 2 --tensor-bytes 100000 --seed 1 >/dev/null
echo "{\"branches\": {\"main\": \"$C1\"}}" > root/hf/open/refs.json
"$MFS_GEN" gguf root/hf/gated/$C3/g-Q4_K_M.gguf --tensors 2 --tensor-bytes 100000 --seed 2 >/dev/null
echo "{\"branches\": {\"main\": \"$C3\"}}" > root/hf/gated/refs.json
touch root/hf/gated/gated
"$MFS_GEN" gguf root/acme/signed/$C2/s-Q4_K_M.gguf --tensors 2 --tensor-bytes 100000 --seed 3 >/dev/null
"$MODELFS" keygen pub >/dev/null
"$MODELFS" publish --key pub.key --repo acme/signed --chunk-size 1048576 root/acme/signed/$C2 >/dev/null
echo "{\"branches\": {\"main\": \"$C2\"}}" > root/acme/signed/refs.json

start_hub() { # start_hub BIND READYFILE
	inns python3 "$MFS_SOURCE_DIR/tests/hub/testhub.py" root --token tok-ok --bind "$1" \
		--ready "$2" --lifetime 200 >"$2.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do [ -s "$2" ] && break; sleep 0.1; done
	[ -s "$2" ] || die "test hub on $1 did not start: $(cat "$2.log")"
}
start_hub "$ADDR" ready.remote
start_hub 127.0.0.1 ready.local
read -r _ RP _ < ready.remote
read -r _ LP _ < ready.local
REMOTE=http://$ADDR:$RP
LOCAL=http://127.0.0.1:$LP
stat_of() { inns curl -s "$1/_control/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }

export MODELFS_STORE=$work/store HF_TOKEN=tok-ok
mfs() { inns env MODELFS_STORE="$MODELFS_STORE" HF_TOKEN="$HF_TOKEN" "$MODELFS" "$@"; }
count() { mfs ls --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
mfs trust hub --prefix hf/ >/dev/null || die "trust hub failed"
mfs trust add pub.pub --prefix acme/ >/dev/null || die "trust add failed"

# Hub-checksum mode over plain HTTP to another host: refused, no token sent.
mfs add --endpoint "$REMOTE" hf/open >out 2>err && fail "hub checksums over plain HTTP were accepted"
grep -qi "https" err || fail "the refusal does not ask for https: $(cat err)"
grep -q "tok-ok" err && fail "the token appears in the error"
# The same with credentials in the URL.
mfs add --endpoint "http://bob:pw-secret@$ADDR:$RP" hf/open >out 2>err &&
	fail "hub checksums over plain HTTP (credentials in the URL) were accepted"
grep -q "pw-secret" err && fail "the password appears in the error"
# A gated repository: refused, saying the token was not sent.
mfs add --endpoint "$REMOTE" hf/gated >out 2>err && fail "a gated repository was read without a token"
grep -qi "not sent" err || fail "the refusal does not say the token was withheld: $(cat err)"
# A signed repository is admitted on its signature, still without the token.
mfs add --endpoint "$REMOTE" acme/signed >out 2>err || fail "signed add over plain HTTP failed: $(cat err)"
grep -qi "not sending HF_TOKEN" err || fail "no warning that HF_TOKEN was withheld: $(cat err)"
[ "$(count)" = 1 ] || fail "expected exactly the signed artifact admitted, got $(count)"

n=$(stat_of "$REMOTE" hub_auth)
reqs=$(inns curl -s "$REMOTE/_control/stats" | python3 -c "import json,sys; print(sum(json.load(sys.stdin)['requests'].values()))")
[ "$reqs" -gt 0 ] || fail "the remote hub saw no requests at all"
[ "$n" = 0 ] || fail "$n requests carried an Authorization header to the plain-HTTP remote host"
[ "$(stat_of "$REMOTE" cdn_tokens)" = 0 ] || fail "its CDN saw an Authorization header"
echo "remote plain-HTTP hub: $reqs requests, $n with Authorization"

# Control: the loopback hub does get the token (the counter can count).
mfs add --endpoint "$LOCAL" hf/gated >out 2>err || fail "gated add on loopback failed: $(cat err)"
[ "$(stat_of "$LOCAL" hub_tokens)" -gt 0 ] || fail "the loopback hub saw no token: the counter is blind"
[ "$FAILS" -eq 0 ] || { echo "$FAILS check(s) failed" >&2; exit 1; }
echo ok

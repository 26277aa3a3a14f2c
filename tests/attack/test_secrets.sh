#!/bin/bash
# test_secrets.sh - credentials in an endpoint URL and HF_TOKEN never reach
# any output, record or attribute (issue 9, finding 5).
#
# add and pull through http://USER:PASSWORD@HOST:PORT with HF_TOKEN set, a
# mount reading through it, and failing commands whose errors name the
# endpoint; then the whole store directory (index.db with strings and
# sqlite3 .dump, records, everything), `ls --json`, `status --json`,
# `getfattr -d` through the mount, the daemon log and every stderr are
# searched for the password, the user:password pair and the token: nothing.
# The credentials did go to the endpoint's own origin (the hub counts
# Authorization headers) and never to its CDN.
. "$(dirname "$0")/../mount/lib.sh"
command -v getfattr >/dev/null || skip "getfattr is needed"
command -v strings >/dev/null || skip "strings is needed"

PW="Pw-$RANDOM-s3cr3t-x9"
USR="alice$RANDOM"
TOK="hf_tok_$RANDOM$RANDOM$RANDOM"
export HF_TOKEN=$TOK

start_hub
make_repo org/sec Sec-Q4_K_M.gguf --tensors 4 --tensor-bytes 800000 --seed 3
publish_trust org/sec
hub_put org/sec
EPC="http://$USR:$PW@${HUB#http://}"

REF=$(mfs add --endpoint "$EPC" org/sec 2>"$WORK/err.add") || die "add: $(cat "$WORK/err.add")"
mfs pull --endpoint "$EPC/" org/sec >"$WORK/out.pull" 2>"$WORK/err.pull" || fail "pull failed: $(cat "$WORK/err.pull")"
# Failing commands whose messages name the endpoint.
mfs add --endpoint "$EPC" org/missing >"$WORK/out.f1" 2>"$WORK/err.f1" && fail "add of a missing repo succeeded"
mfs add --endpoint "${EPC}?x=1" org/sec >"$WORK/out.f2" 2>"$WORK/err.f2" && fail "an endpoint with a query was accepted"
mfs add --endpoint "ftp://$USR:$PW@example.invalid/" org/sec >"$WORK/out.f3" 2>"$WORK/err.f3" &&
	fail "an ftp endpoint was accepted"
mfs add --endpoint "http://$USR:$PW/x@${HUB#http://}" org/sec >"$WORK/out.f4" 2>"$WORK/err.f4" &&
	fail "an endpoint with an unencoded '/' in its password was accepted"
grep -q "bad endpoint" "$WORK/err.f4" || fail "unclear error for a bad credentials part: $(cat "$WORK/err.f4")"
mfs ls --json >"$WORK/ls.json" 2>"$WORK/err.ls" || fail "ls --json failed"
mfs status --json >"$WORK/status.json" 2>"$WORK/err.status" || fail "status --json failed"
grep -q "\"endpoint\": *\"$HUB\"" "$WORK/ls.json" || fail "ls --json does not show the redacted endpoint $HUB"

mount_fg
F="$MNT/$REF"
sha_of "$F" >"$WORK/read.sha" || fail "read through the mount failed"
getfattr -d -m - "$F" >"$WORK/xattr.txt" 2>&1 || fail "getfattr failed"
grep -q "source=\"$HUB org/sec" "$WORK/xattr.txt" || fail "the source attribute is not the redacted endpoint: $(grep source "$WORK/xattr.txt")"
unmount "$MNT"

# The hub saw the basic credentials (they went to the endpoint's own
# origin); its CDN saw no Authorization at all.
python3 - "$HUB/_control/stats" <<'PYEOF' || fail "credentials did not go (only) to the hub"
import json, sys, urllib.request
s = json.load(urllib.request.urlopen(sys.argv[1]))
assert s["hub_auth"] > 0, s["hub_auth"]
assert s["cdn_tokens"] == 0, s["cdn_tokens"]
PYEOF

sqlite3 "$STORE/index.db" .dump >"$WORK/index.dump" 2>&1 || fail "cannot dump index.db"
strings -a "$STORE/index.db" >"$WORK/index.strings"
for secret in "$PW" "$USR:" "$TOK"; do
	hits=$(grep -rlaF -- "$secret" "$STORE" "$WORK"/err.* "$WORK"/out.* "$WORK/ls.json" \
		"$WORK/status.json" "$WORK/xattr.txt" "$WORK/daemon.log" "$WORK/index.dump" \
		"$WORK/index.strings" 2>/dev/null)
	[ -z "$hits" ] || fail "'$secret' found in: $hits"
done
grep -q "$HUB" "$WORK/index.dump" || fail "the index does not hold the redacted endpoint at all"
finish

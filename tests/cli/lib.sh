# lib.sh - shared helpers for the command-level tests (sourced, not run).
#
# Sets up a private work directory (removed on exit) and a private store
# (MODELFS_STORE), and offers:
#   fail MSG...                 record a failed check and go on
#   die MSG...                  record it and stop now
#   finish                      exit 1 if any check failed, else print "ok"
#   mfs ARGS...                 the modelfs binary
#   expect_ok CMD...            CMD must exit 0 (its output goes to $OUT/$ERR)
#   expect_fail CMD... --msg RE CMD must exit non-zero with RE (extended,
#                               case-insensitive) in its stderr (printed
#                               when MFS_TEST_VERBOSE is set)
#   assert_nothing_admitted     `ls --json` is [] and the artifacts table is empty
#   assert_chunks_consistent    every chunk file hashes to its name, and every
#                               resident row has its chunk file
#   ls_json                     `modelfs ls --json` into $WORK/ls.json
#   make_gguf_repo ORG/NAME FILE [mfs-gen args]   a repo dir under $REPO
#   publish ORG/NAME [args]     sign $REPO/ORG/NAME with $WORK/k.key

set -euo pipefail

: "${MODELFS:?MODELFS must name the modelfs binary}"
: "${MFS_GEN:?MFS_GEN must name the mfs-gen binary}"
for tool in python3 sqlite3 sha256sum; do
	command -v "$tool" >/dev/null || { echo "skip: $tool is needed"; exit 77; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mfs-cli.XXXXXX")
# Chunk files are read-only; their directories are not, so rm -rf works.
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
cd "$WORK"
export MODELFS_STORE="$WORK/store"
STORE="$MODELFS_STORE"
REPO="$WORK/repo"
ENDPOINT="file://$REPO"
mkdir -p "$REPO"
FAILS=0
OUT=""
ERR=""

fail() {
	echo "FAIL: $*" >&2
	FAILS=$((FAILS + 1))
}

die() {
	fail "$@"
	echo "$FAILS check(s) failed (stopped early)" >&2
	exit 1
}

finish() {
	if [ "$FAILS" -ne 0 ]; then
		echo "$FAILS check(s) failed" >&2
		exit 1
	fi
	echo "ok"
}

mfs() { "$MODELFS" "$@"; }

# Runs CMD with stdout in $OUT and stderr in $ERR; returns its exit code.
capture() {
	local rc=0
	"$@" >"$WORK/.out" 2>"$WORK/.err" || rc=$?
	OUT=$(cat "$WORK/.out")
	ERR=$(cat "$WORK/.err")
	return "$rc"
}

expect_ok() {
	local rc=0
	capture "$@" || rc=$?
	if [ "$rc" -ne 0 ]; then
		fail "'$*' exited $rc; stderr: $ERR"
		return 1
	fi
	return 0
}

# expect_fail CMD... --msg REGEX
expect_fail() {
	local args=() re="" rc=0
	while [ $# -gt 0 ]; do
		if [ "$1" = "--msg" ]; then
			re=$2
			shift 2
			continue
		fi
		args+=("$1")
		shift
	done
	[ -n "$re" ] || die "expect_fail without --msg: ${args[*]}"
	capture "${args[@]}" || rc=$?
	if [ "$rc" -eq 0 ]; then
		fail "'${args[*]}' succeeded, expected a failure matching /$re/; stdout: $OUT"
		return 1
	fi
	if ! grep -qEi -- "$re" <<<"$ERR"; then
		fail "'${args[*]}' exited $rc but stderr does not match /$re/: $ERR"
		return 1
	fi
	[ -z "${MFS_TEST_VERBOSE:-}" ] || echo "refused as expected: ${args[*]}: $ERR"
	return 0
}

ls_json() {
	mfs ls --json >"$WORK/ls.json" || { fail "ls --json failed"; echo '[]' >"$WORK/ls.json"; }
}

assert_nothing_admitted() {
	local what=${1:-}
	local text n
	text=$(mfs ls --json 2>&1) || { fail "$what: ls --json failed: $text"; return 1; }
	python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1]) == [] else 1)' "$text" ||
		fail "$what: something was admitted: $text"
	if [ -f "$STORE/index.db" ]; then
		n=$(sqlite3 "$STORE/index.db" 'SELECT count(*) FROM artifacts' 2>&1) ||
			fail "$what: cannot query the index: $n"
		[ "$n" = 0 ] || fail "$what: the artifacts table has $n row(s)"
	fi
	if [ -d "$STORE/records" ] && [ -n "$(ls -A "$STORE/records")" ]; then
		fail "$what: records/ is not empty: $(ls "$STORE/records")"
	fi
}

# Every chunk file hashes to its name; every resident row has its chunk file.
assert_chunks_consistent() {
	local what=${1:-} f name sum d
	[ -d "$STORE/chunks" ] || return 0
	while IFS= read -r -d '' f; do
		name=$(basename "$f")
		sum=$(sha256sum "$f" | cut -d' ' -f1)
		[ "$sum" = "$name" ] || fail "$what: chunk file $name hashes to $sum"
		[ "$(basename "$(dirname "$f")")" = "${name:0:2}" ] ||
			fail "$what: chunk $name is in the wrong directory"
	done < <(find "$STORE/chunks" -type f -print0)
	if [ -f "$STORE/index.db" ]; then
		while IFS= read -r d; do
			[ -n "$d" ] || continue
			[ -f "$STORE/chunks/${d:0:2}/$d" ] ||
				fail "$what: resident row $d has no chunk file"
		done < <(sqlite3 "$STORE/index.db" 'SELECT lower(hex(digest)) FROM resident')
	fi
}

# python3 over $WORK/ls.json: json_check 'PYTHON EXPR using a (the list)' MSG
json_check() {
	python3 - "$WORK/ls.json" "$1" <<'EOF' || fail "$2: $(cat "$WORK/ls.json")"
import json, sys
a = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2], {"a": a, "json": json})
sys.exit(0 if ok else 1)
EOF
}

keygen() {
	[ -f "$WORK/k.key" ] && return 0
	KEY_ID=$(mfs keygen "$WORK/k" | sed -n 's/^key id: //p')
	[ ${#KEY_ID} -eq 16 ] || die "keygen printed no key id"
}

# make_gguf_repo ORG/NAME FILE [mfs-gen args]
make_gguf_repo() {
	local repo=$1 file=$2
	shift 2
	mkdir -p "$REPO/$repo"
	"$MFS_GEN" gguf "$REPO/$repo/$file" "$@" >/dev/null || die "mfs-gen failed for $repo/$file"
}

# publish ORG/NAME [publish args]
publish() {
	local repo=$1
	shift
	keygen
	mfs publish --key "$WORK/k.key" --repo "$repo" "$@" "$REPO/$repo" >/dev/null ||
		die "publish $repo failed"
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

#!/usr/bin/env bash
# Differential test of the GGUF validator against two independent parsers
# (@huggingface/gguf and hyllama, ../shared/tools/gguf-oracle): for the real
# fixtures and for files mfs-gen writes (plain, no vocabulary, large
# vocabulary, many tensors, another architecture, every shard of a split),
# `mfs-gen dump` and both oracles must agree on the version, the tensor count,
# every key and scalar value, array lengths, the data offset and every
# tensor's name, shape, type and offset. For the hostile files, whatever an
# oracle refuses the validator must refuse too.
# Skips (exit 77) where node, python3 or ../shared is missing, or the oracle's
# npm packages cannot be installed.
set -euo pipefail

src=${MFS_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
gen=${MFS_GEN:-${MFS_BUILD_DIR:-$src/build}/mfs-gen}
shared=$src/../shared
oracle_src=$shared/tools/gguf-oracle
fixtures=$shared/fixtures

skip() { echo "skipped: $*"; exit 77; }
command -v node >/dev/null || skip "node is not installed"
command -v python3 >/dev/null || skip "python3 is not installed"
[[ -f $oracle_src/dump.mjs ]] || skip "$oracle_src is absent (no ../shared beside the checkout)"
[[ -x $gen ]] || { echo "FAIL: $gen is not built"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mfs-gguf-oracle.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The oracle needs its node_modules; shared/ is read-only, so install a copy
# (kept in the build directory between runs when there is one).
oracle=$oracle_src
if [[ ! -d $oracle_src/node_modules ]]; then
	oracle=${MFS_BUILD_DIR:-$work}/gguf-oracle
	mkdir -p "$oracle"
	if ! cmp -s "$oracle_src/package-lock.json" "$oracle/package-lock.json" || [[ ! -d $oracle/node_modules ]]; then
		cp "$oracle_src/dump.mjs" "$oracle_src/package.json" "$oracle_src/package-lock.json" "$oracle/"
		rm -rf "$oracle/node_modules"
		if ! timeout 300 npm ci --prefix "$oracle" --no-audit --no-fund >"$work/npm.log" 2>&1; then
			tail -5 "$work/npm.log"
			skip "npm ci for the gguf oracle failed"
		fi
	fi
	cp "$oracle_src/dump.mjs" "$oracle/dump.mjs"
fi

files=()
for f in dummy.gguf llama-2-tiny-random.gguf; do
	[[ -f $fixtures/$f ]] && files+=("$fixtures/$f")
done
g() { "$gen" "$@" >/dev/null; }
g gguf "$work/plain.gguf"
g gguf "$work/novocab.gguf" --vocab 0 --tensors 3
g gguf "$work/bigvocab.gguf" --vocab 40000 --tensors 5 --seed 9
g gguf "$work/many.gguf" --tensors 40 --tensor-bytes 1000 --file-type 15
g gguf "$work/qwen.gguf" --arch qwen2 --name "Qwen-ish é test" --tensors 6 --tensor-bytes 300K --context-length 32768
g gguf "$work/split.gguf" --split 3 --tensors 11 --vocab 1000
files+=("$work/plain.gguf" "$work/novocab.gguf" "$work/bigvocab.gguf" "$work/many.gguf"
	"$work/qwen.gguf" "$work"/split-0000{1,2,3}-of-00003.gguf)

pass=0 fail=0
compare() { # FILE: ours vs both oracles
	local f=$1 base
	base=$work/$(basename "$f")
	if ! "$gen" dump "$f" >"$base.ours.json" 2>"$base.ours.err"; then
		echo "FAIL $f: mfs-gen dump refused it: $(cat "$base.ours.err")"
		return 1
	fi
	node "$oracle/dump.mjs" "$f" >"$base.hf.json"
	node "$oracle/dump.mjs" --parser hyllama "$f" >"$base.hy.json"
	python3 - "$base.ours.json" "$base.hf.json" "$base.hy.json" <<'EOF'
import json, sys

ours = json.load(open(sys.argv[1]))
problems = []

def same_scalar(a, b, ascii_only):
    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str):
        if ascii_only and (not a.isascii() or not b.isascii()):
            return True  # hyllama decodes strings as Latin-1
        try:
            return int(a) == int(b)
        except ValueError:
            pass
        try:
            return float(a) == float(b)
        except ValueError:
            return False
    return False

for path in sys.argv[2:]:
    th = json.load(open(path))
    who = th["parser"]
    ascii_only = who == "hyllama"
    def bad(msg):
        problems.append(f"{who}: {msg}")
    if th["version"] != ours["version"]:
        bad(f"version {th['version']} != {ours['version']}")
    if th["tensor_count"] != ours["tensor_count"]:
        bad(f"tensor_count {th['tensor_count']} != {ours['tensor_count']}")
    if "data_offset" in th and th["data_offset"] != ours["data_offset"]:
        bad(f"data_offset {th['data_offset']} != {ours['data_offset']}")
    if set(th["kv"]) != set(ours["kv"]):
        bad(f"keys differ: only theirs {sorted(set(th['kv']) - set(ours['kv']))}, "
            f"only ours {sorted(set(ours['kv']) - set(th['kv']))}")
    if int(ours["kv_count"]) != len(th["kv"]):
        bad(f"kv_count {ours['kv_count']} != {len(th['kv'])} keys")
    for k, tv in th["kv"].items():
        ov = ours["kv"].get(k)
        if ov is None:
            continue
        if isinstance(tv, dict):
            if not isinstance(ov, dict) or ov.get("len") != tv["len"]:
                bad(f"key {k}: array {tv} != {ov}")
        elif not same_scalar(ov, tv, ascii_only):
            bad(f"key {k}: {tv!r} != {ov!r}")
    if len(th["tensors"]) != len(ours["tensors"]):
        bad(f"{len(th['tensors'])} tensors != {len(ours['tensors'])}")
    for a, b in zip(th["tensors"], ours["tensors"]):
        for field in ("name", "shape", "type", "offset"):
            if a[field] != b[field] and not (field == "name" and ascii_only and not b["name"].isascii()):
                bad(f"tensor {b['name']}: {field} {a[field]!r} != {b[field]!r}")

# The compact metadata agrees with the raw keys.
kv, meta = ours["kv"], ours["meta"]
arch = kv.get("general.architecture")
if meta.get("architecture") != arch:
    problems.append(f"meta architecture {meta.get('architecture')!r} != {arch!r}")
if arch:
    for key, field in (("context_length", "context_length"), ("embedding_length", "embedding_length"),
                       ("block_count", "block_count"), ("attention.head_count", "head_count")):
        raw = kv.get(f"{arch}.{key}")
        if raw is not None and not isinstance(raw, dict) and int(raw) != meta.get(field):
            problems.append(f"meta {field} {meta.get(field)} != {raw}")
toks = kv.get("tokenizer.ggml.tokens")
if toks and meta.get("vocab_size") != toks["len"]:
    problems.append(f"meta vocab_size {meta.get('vocab_size')} != {toks['len']}")
if int(ours["tensor_count"]) != meta["tensor_count"] or int(ours["data_offset"]) != meta["data_offset"]:
    problems.append("meta tensor_count/data_offset differ from the dump")

for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
EOF
}

for f in "${files[@]}"; do
	if compare "$f"; then
		echo "ok $f"
		pass=$((pass + 1))
	else
		echo "FAIL $f"
		fail=$((fail + 1))
	fi
done

# The split set: shards numbered 0..2 in order, split.tensors.count = the sum.
if python3 - "$work"/split-0000{1,2,3}-of-00003.gguf.ours.json <<'EOF'
import json, sys
metas = [json.load(open(p))["meta"] for p in sys.argv[1:]]
total = sum(m["tensor_count"] for m in metas)
ok = all(m.get("split_no") == i and m.get("split_count") == len(metas)
         and m.get("split_tensors_count") == total for i, m in enumerate(metas))
ok = ok and "architecture" in metas[0] and all("architecture" not in m for m in metas[1:])
sys.exit(0 if ok else 1)
EOF
then
	echo "ok split set consistent"
	pass=$((pass + 1))
else
	echo "FAIL split set inconsistent"
	fail=$((fail + 1))
fi

# Hostile files: what either oracle refuses, the validator refuses.
for kind in $("$gen" bad --list | grep '^gguf-'); do
	f=$work/$kind.gguf
	"$gen" bad "$kind" "$f" >/dev/null
	if "$gen" dump "$f" >/dev/null 2>"$work/$kind.err"; then
		echo "FAIL $kind: accepted"
		fail=$((fail + 1))
		continue
	fi
	refused_by=()
	node "$oracle/dump.mjs" "$f" >/dev/null 2>&1 || refused_by+=(hf)
	node "$oracle/dump.mjs" --parser hyllama "$f" >/dev/null 2>&1 || refused_by+=(hyllama)
	echo "ok $kind refused: $(head -c 200 "$work/$kind.err") [oracles refusing: ${refused_by[*]:-none}]"
	pass=$((pass + 1))
done

echo "$pass passed, $fail failed"
((fail == 0))

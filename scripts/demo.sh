#!/usr/bin/env bash
# The demo: installs what is missing, builds, generates a small model
# repository (a GGUF with real tensor data, a two-shard split GGUF and a
# safetensors file), publishes it with a fresh key, trusts the key, adds and
# pulls the models, and mounts the store to show them as plain files.
# Needs no network. Leaves everything under ./demo-out (removed on the next run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
root=$PWD
out=$root/demo-out
B=$root/build
if mountpoint -q "$out/mnt" 2>/dev/null; then fusermount3 -u "$out/mnt" || umount -l "$out/mnt"; fi
rm -rf "$out"
mkdir -p "$out/repo/demo/tiny-llama" "$out/repo/demo/split-llama" "$out/repo/demo/tiny-st" "$out/mnt"
export MODELFS_STORE=$out/store
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# A repository: one directory per model repo, as a hub would hold it.
"$B/mfs-gen" gguf "$out/repo/demo/tiny-llama/tiny-llama-Q4_K_M.gguf" --tensors 6 --tensor-bytes 3000000 --seed 1 >/dev/null
"$B/mfs-gen" gguf "$out/repo/demo/tiny-llama/tiny-llama-Q8_0.gguf" --tensors 6 --tensor-bytes 2000000 --seed 2 >/dev/null
"$B/mfs-gen" gguf "$out/repo/demo/split-llama/split-llama" --split 2 --tensors 6 --tensor-bytes 2000000 --seed 3 >/dev/null
"$B/mfs-gen" safetensors "$out/repo/demo/tiny-st/model.safetensors" --tensors 4 --tensor-bytes 1000000 --seed 4 >/dev/null

cd "$out"
step "$B/modelfs" keygen publisher
for m in tiny-llama split-llama tiny-st; do
  step "$B/modelfs" publish --key publisher.key --repo "demo/$m" "repo/demo/$m"
done
step "$B/modelfs" trust add publisher.pub --prefix demo/
step "$B/modelfs" add --endpoint "file://$out/repo" demo/tiny-llama:Q4_K_M
step "$B/modelfs" add --endpoint "file://$out/repo" demo/split-llama
step "$B/modelfs" pull --endpoint "file://$out/repo" demo/tiny-st
step "$B/modelfs" ls

if [ -e /dev/fuse ] && "$B/modelfs" mount --help >/dev/null 2>&1; then
  step "$B/modelfs" mount "$out/mnt"
  trap 'fusermount3 -u "$out/mnt" 2>/dev/null || true' EXIT
  primary=$(cd "$out/mnt" && ls -d demo/tiny-llama@*/tiny-llama-Q4_K_M.gguf | head -n1)
  step ls -l "$out/mnt/demo/"
  step ls -lR "$out/mnt/demo/tiny-llama@main/"
  step du -h "$out/mnt/$primary"
  step du -h --apparent-size "$out/mnt/$primary"
  step getfattr -d -m user.modelfs "$out/mnt/$primary"
  step sha256sum "$out/mnt/$primary" "repo/demo/tiny-llama/tiny-llama-Q4_K_M.gguf"
  sleep 1.5 # st_blocks is refreshed after the attribute timeout (1 s)
  step du -h "$out/mnt/$primary"
  step "$B/modelfs" status
  step fusermount3 -u "$out/mnt"
  trap - EXIT
else
  echo "(no /dev/fuse here: the mount part of the demo is skipped)"
fi
step "$B/modelfs" verify
echo
echo "demo done: everything is under $out"

/*
 * manifest.h - the publisher-signed manifest, format v1 (docs/manifest.md).
 *
 * A manifest is the exact bytes of `.modelfs/manifest.json` in a model
 * repository: a JSON object naming the repo, a sequence number, the signing
 * key's id, and for every file its path, size, SHA-256, chunk size and the
 * SHA-256 of every chunk. The signature (`.modelfs/manifest.sig`) covers those
 * bytes as they are, so nothing here ever re-serialises a manifest that it
 * has parsed: the parser checks the bytes it was given, the builder produces
 * new bytes once.
 *
 * Manifests come from the network and are untrusted until their signature
 * verifies (trust.h), and the parser runs before that, so it is bounded and
 * strict: at most MFS_MANIFEST_MAX bytes, exact types, version 1 only, no
 * unknown keys, at least one file, safe unique paths (no path both a file and
 * a directory), chunk sizes within MFS_CHUNK_SIZE_MIN..MAX, chunk counts that
 * match the sizes.
 *
 * No function here keeps state; all are thread-safe. mfs_manifest_build
 * reads the files of a directory (blocks on disk I/O); the others do not block.
 */
#ifndef MFS_MANIFEST_H
#define MFS_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define MFS_MANIFEST_VERSION 1
#define MFS_MANIFEST_MAX (64u << 20)           /* cap on manifest bytes */
#define MFS_MANIFEST_PATH_MAX 1024             /* longest file path, bytes */
#define MFS_MANIFEST_REPO_MAX 256              /* longest "org/name", bytes */
#define MFS_CHUNK_SIZE_DEFAULT (4u << 20)      /* 4 MiB */
#define MFS_CHUNK_SIZE_MIN (4u << 10)          /* 4 KiB */
/* 64 MiB. A chunk is the unit that is fetched, held in memory and verified
 * whole before any byte of it is served, so the chunk size bounds the memory
 * one read costs; a larger one lets a publisher (or whoever crafted the
 * manifest) make a 4 KiB read cost gigabytes (docs/manifest.md). */
#define MFS_CHUNK_SIZE_MAX (64u << 20)
#define MFS_MANIFEST_DIR ".modelfs"
#define MFS_MANIFEST_JSON ".modelfs/manifest.json"
#define MFS_MANIFEST_SIG ".modelfs/manifest.sig"

struct mfs_manifest_file {
	char *path;               /* repo-relative, safe (see mfs_manifest_path_is_safe) */
	uint64_t size;            /* bytes */
	char sha256[65];          /* whole-file digest, 64 lowercase hex + NUL */
	uint32_t chunk_size;      /* power of two, MFS_CHUNK_SIZE_MIN..MAX */
	uint32_t n_chunks;        /* ceil(size / chunk_size); 0 for an empty file */
	uint8_t (*chunks)[32];    /* n_chunks raw SHA-256 digests; NULL when 0 */
};

struct mfs_manifest {
	uint32_t version;         /* MFS_MANIFEST_VERSION */
	char *repo;               /* "org/name" */
	uint64_t sequence;        /* >= 1, at most INT64_MAX */
	char key_id[17];          /* 16 lowercase hex + NUL: the key that signed */
	struct mfs_manifest_file *files; /* sorted by path (byte order), unique */
	size_t n_files;
};

/*
 * Parses len bytes of manifest JSON into *out (the caller releases it with
 * mfs_manifest_release). Nothing is written to *out on failure.
 * Errors: -EFBIG (kind PARSE) above MFS_MANIFEST_MAX; -EINVAL kind PARSE for
 * malformed JSON or a wrong type; -EINVAL kind FORMAT for a well-formed but
 * invalid manifest (unsupported version, bad repo, no files, unsafe or
 * duplicate path, a path that is also a directory of another, bad digest,
 * chunk size out of range or not a power of two, bad chunk count); -ENOMEM.
 */
int mfs_manifest_parse(const char *json, size_t len, struct mfs_manifest *out,
		       struct mfs_err *err);

/* Frees what m owns and zeroes it. NULL and a zeroed manifest are no-ops. */
void mfs_manifest_release(struct mfs_manifest *m);

/* The entry for path, or NULL. Binary search; m stays the owner. */
const struct mfs_manifest_file *mfs_manifest_find(const struct mfs_manifest *m,
						  const char *path);

/*
 * Builds new manifest bytes for every file under dir (recursively, except the
 * top-level `.modelfs/` directory), sorted by path, each hashed whole and in
 * chunks of chunk_size. Writes a malloc'd buffer to *json (NUL-terminated for
 * convenience; the caller frees) and its length, without the NUL, to *len.
 * Symbolic links, devices, sockets and FIFOs are refused (-EINVAL kind USAGE):
 * a manifest lists plain files only. Also -EINVAL for a bad repo, sequence
 * (0 or above INT64_MAX), chunk size or key id, a path that is not safe or
 * not UTF-8, or a directory with no files; -EFBIG if the manifest would exceed
 * MFS_MANIFEST_MAX; -EIO if a file changed size while being hashed; -errno
 * from the file system.
 */
int mfs_manifest_build(const char *dir, const char *repo, uint64_t sequence,
		       uint32_t chunk_size, const char *key_id, char **json, size_t *len,
		       struct mfs_err *err);

/* "org/name": exactly one '/', both parts non-empty, neither "." nor "..",
 * only ASCII letters, digits, '-', '_' and '.', at most MFS_MANIFEST_REPO_MAX
 * bytes. */
bool mfs_manifest_repo_is_valid(const char *repo);
/* One part (org or name) of a repo name: the characters and limits above. */
bool mfs_manifest_name_part_is_valid(const char *s, size_t n);

/* A path a manifest may list: non-empty, at most MFS_MANIFEST_PATH_MAX bytes,
 * relative, no empty, "." or ".." component, no byte below 0x20, no 0x7f, no
 * backslash, and neither ".modelfs" nor under ".modelfs/". */
bool mfs_manifest_path_is_safe(const char *path);

/* True for a power of two in MFS_CHUNK_SIZE_MIN..MFS_CHUNK_SIZE_MAX. */
bool mfs_manifest_chunk_size_is_valid(uint64_t chunk_size);

#endif

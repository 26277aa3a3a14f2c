#!/usr/bin/env python3
"""A faithful HF-compatible test hub (python3 standard library only).

Serves model repositories from a directory:

    ROOT/<org>/<name>/refs.json        {"branches": {"main": C}, "tags": {"v1": C},
                                        "pulls": {"1": C}}
    ROOT/<org>/<name>/<C>/<files...>   the files of commit C (40 hex)
    ROOT/<org>/<name>/gated            present: the repo needs a token (--token)

Endpoints (hub port): /api/models/{repo}/revision/{rev}, /api/models/{repo}/tree/
{rev}[/{path}]?recursive=true (small pages, absolute Link URLs),
/api/models/{repo}/refs, GET/HEAD /{repo}/resolve/{rev}/{path}. Revisions: branch,
tag, 40-hex commit, unique short prefix (4+), refs/pr/N, refs/heads/NAME and
refs/tags/NAME (plain or %2F-encoded).
LFS files (larger than --lfs-threshold, or *.gguf / *.safetensors) answer 302 to
the CDN port, which records every Authorization header it sees.

Faults (--fault NAME[:GLOB[:COUNT]], or POST /_control/fault?name=&path=&count=):
cut, full200, corrupt, stall, 429, 503, badrange, redirect-file, redirect-third,
redirect-loop; and on API answers (GLOB matches "revision" or "tree"): badjson
(not JSON), badtypes (a size given as a string), badsha (a short "sha"),
link-offsite (a next-page Link to another host). For files GLOB matches the path
inside the repo; COUNT is how many times the fault
fires (default 1; 0 = forever). GET /_control/stats gives counters as JSON;
POST /_control/reset clears faults and counters.

Hostile switches for the network side (faults like the ones above):
drip (file bytes: headers, then one byte a second until the client gives up);
on tree answers (GLOB "tree"): hugepage (a 64 MiB JSON array of empty objects),
manyvalues (a page just under 4 MiB of tiny JSON values), bigpages (pages of
2,000 file entries with 1,000-byte paths, each linking to a next page, never
ending), endless (empty pages, each linking to a next one, never ending),
slowpages (like endless, each page after half a second).
--bind ADDR listens on ADDR instead of 127.0.0.1 (all three servers, and the
URLs it hands out). The stats also count "hub_auth": hub requests carrying
any Authorization header (Bearer or Basic); Basic credentials are otherwise
ignored, so a repository answers the same with or without them.

Prints "READY <hub_port> <cdn_port> <third_port>" on stdout (and writes it to
--ready FILE) once listening; exits after --lifetime seconds or when its parent
process goes away.
"""
import argparse
import fnmatch
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 1 << 20
HEX40 = re.compile(r"^[0-9a-f]{40}$")
FAULTS = ("cut", "full200", "corrupt", "stall", "429", "503", "badrange",
          "redirect-file", "redirect-third", "redirect-loop",
          # API answers (GLOB matches "revision" or "tree"):
          "badjson", "badtypes", "badsha", "link-offsite",
          # --- hostile switches of the network side (see the docstring) ---
          "drip", "hugepage", "manyvalues", "bigpages", "endless", "slowpages")

LOCK = threading.Lock()
STATE = {
    "faults": [],          # [{"name", "path", "count"}]
    "requests": {},        # "SERVER METHOD path" -> n
    "ranges": {},          # "file-path RANGE" -> n
    "hub_tokens": 0,       # requests to the hub carrying a token
    "hub_auth": 0,         # requests to the hub carrying any Authorization
    "cdn_tokens": 0,       # requests to the CDN carrying any Authorization
    "cdn_token_values": [],
    "third_requests": 0,
    "faults_fired": {},
}
CFG = {}
HASH_CACHE = {}


def take_fault(path, names):
    """Returns the name of a fault among names that fires for path, or None."""
    with LOCK:
        for f in STATE["faults"]:
            if f["name"] in names and fnmatch.fnmatch(path, f["path"]):
                if f["count"] == 0:
                    pass
                elif f["count"] == 1:
                    STATE["faults"].remove(f)
                else:
                    f["count"] -= 1
                STATE["faults_fired"][f["name"]] = STATE["faults_fired"].get(f["name"], 0) + 1
                return f["name"]
    return None


def add_fault(name, path="*", count=1):
    if name not in FAULTS:
        raise ValueError("unknown fault '%s'" % name)
    with LOCK:
        STATE["faults"].append({"name": name, "path": path or "*", "count": int(count)})


def bump(table, key):
    with LOCK:
        STATE[table][key] = STATE[table].get(key, 0) + 1


def file_hashes(path):
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    with LOCK:
        if key in HASH_CACHE:
            return HASH_CACHE[key]
    sha = hashlib.sha256()
    git = hashlib.sha1(b"blob %d\0" % st.st_size)
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            sha.update(b)
            git.update(b)
    out = (sha.hexdigest(), git.hexdigest())
    with LOCK:
        HASH_CACHE[key] = out
    return out


def is_lfs(rel, size):
    return size > CFG["lfs_threshold"] or rel.endswith((".gguf", ".safetensors"))


def lfs_pointer(sha, size):
    return ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n"
            % (sha, size)).encode()


def git_blob_oid(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, root, org, name):
        self.id = "%s/%s" % (org, name)
        self.dir = os.path.join(root, org, name)
        with open(os.path.join(self.dir, "refs.json")) as f:
            refs = json.load(f)
        self.branches = refs.get("branches", {})
        self.tags = refs.get("tags", {})
        self.pulls = {str(k): v for k, v in refs.get("pulls", {}).items()}
        self.gated = os.path.exists(os.path.join(self.dir, "gated"))
        self.commits = sorted(d for d in os.listdir(self.dir)
                              if HEX40.match(d) and os.path.isdir(os.path.join(self.dir, d)))

    def resolve(self, rev):
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.tags:
            return self.tags[rev]
        m = re.match(r"^refs/pr/(\d+)$", rev)
        if m and m.group(1) in self.pulls:
            return self.pulls[m.group(1)]
        # --- full ref names (identity tests): "refs/heads/NAME" and
        # "refs/tags/NAME" resolve as NAME does in git, so a client may spell
        # one branch two ways.
        m = re.match(r"^refs/(heads|tags)/([^/]+)$", rev)
        if m:
            return (self.branches if m.group(1) == "heads" else self.tags).get(m.group(2))
        if HEX40.match(rev) and rev in self.commits:
            return rev
        if re.match(r"^[0-9a-f]{4,39}$", rev):
            hits = [c for c in self.commits if c.startswith(rev)]
            if len(hits) == 1:
                return hits[0]
        return None

    def files(self, commit):
        base = os.path.join(self.dir, commit)
        out = []
        for d, dirs, names in os.walk(base):
            dirs.sort()
            for n in sorted(names):
                full = os.path.join(d, n)
                out.append((os.path.relpath(full, base).replace(os.sep, "/"), full))
        return sorted(out)

    def dirs(self, commit):
        base = os.path.join(self.dir, commit)
        out = []
        for d, dirs, _ in os.walk(base):
            for n in dirs:
                out.append(os.path.relpath(os.path.join(d, n), base).replace(os.sep, "/"))
        return sorted(out)


def find_repo(org, name):
    if not re.match(r"^[A-Za-z0-9._-]+$", org) or not re.match(r"^[A-Za-z0-9._-]+$", name):
        return None
    if org in (".", "..") or name in (".", ".."):
        return None
    d = os.path.join(CFG["root"], org, name)
    if not os.path.isfile(os.path.join(d, "refs.json")):
        return None
    return Repo(CFG["root"], org, name)


def split_rev(rest):
    """Splits 'rev[/path]' where rev may be refs/pr/N written with plain slashes."""
    m = re.match(r"^(refs/pr/\d+|refs/(?:heads|tags)/[^/]+)(?:/(.*))?$", rest)
    if m:
        return m.group(1), m.group(2) or ""
    if "/" in rest:
        a, b = rest.split("/", 1)
        return a, b
    return rest, ""


def parse_range(h, size):
    """Returns None (no range), "bad" (unsatisfiable) or (start, end) inclusive."""
    if not h:
        return None
    m = re.match(r"^bytes=(\d*)-(\d*)$", h.strip())
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None  # unsupported forms (multiple ranges): whole body
    a, b = m.group(1), m.group(2)
    if a == "":
        n = int(b)
        if n == 0 or size == 0:
            return "bad"
        return (max(0, size - n), size - 1)
    a = int(a)
    if a >= size:
        return "bad"
    e = size - 1 if b == "" else min(int(b), size - 1)
    if e < a:
        return "bad"
    return (a, e)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "testhub/1"
    role = "hub"

    def setup(self):
        super().setup()
        # Like real servers: no Nagle delay on the tail of a response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def log_message(self, fmt, *args):
        if CFG.get("verbose"):
            sys.stderr.write("%s %s\n" % (self.role, fmt % args))

    # --- helpers ---
    def send_json(self, code, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, code, ecode, msg, headers=None):
        h = {"X-Error-Code": ecode, "X-Error-Message": msg}
        h.update(headers or {})
        self.send_json(code, {"error": msg}, h)

    def token(self):
        a = self.headers.get("Authorization", "")
        return a[7:] if a.startswith("Bearer ") else None

    def base_url(self):
        return "http://%s:%d" % (CFG["bind"], self.server.server_address[1])

    def check_access(self, repo):
        tok = self.token()
        if tok is not None:
            with LOCK:
                STATE["hub_tokens"] += 1
        if repo.gated:
            if tok is None:
                self.error(401, "GatedRepo", "Access to model %s is restricted." % repo.id)
                return False
            if tok != CFG["token"]:
                self.error(403, "GatedRepo", "Access to model %s is restricted." % repo.id)
                return False
        return True

    def repo_or_error(self, org, name):
        repo = find_repo(org, name)
        if repo is None:
            code = 401 if self.token() is None else 404
            self.error(code, "RepoNotFound", "Repository Not Found for url: %s" % self.path)
        return repo

    # --- routing ---
    def do_HEAD(self):
        self.route()

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def route(self):
        u = urllib.parse.urlsplit(self.path)
        bump("requests", "%s %s %s" % (self.role, self.command, u.path))
        if self.role == "hub" and "Authorization" in self.headers:
            with LOCK:
                STATE["hub_auth"] += 1
        try:
            if self.role == "cdn":
                return self.cdn(u)
            if self.role == "third":
                with LOCK:
                    STATE["third_requests"] += 1
                return self.error(404, "EntryNotFound", "nothing here")
            if u.path.startswith("/_control/"):
                return self.control(u)
            if u.path.startswith("/api/models/"):
                return self.api(u)
            m = re.match(r"^/([^/]+)/([^/]+)/resolve/(.+)$", u.path)
            if m:
                return self.resolve_file(m.group(1), m.group(2), m.group(3))
            self.error(404, "NotFound", "no such endpoint")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def control(self, u):
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path == "/_control/fault":
            try:
                add_fault(q.get("name", ""), q.get("path", "*"), int(q.get("count", "1")))
            except ValueError as e:
                return self.send_json(400, {"error": str(e)})
            return self.send_json(200, {"ok": True})
        if u.path == "/_control/reset":
            with LOCK:
                STATE["faults"] = []
                STATE["requests"] = {}
                STATE["ranges"] = {}
                STATE["hub_tokens"] = 0
                STATE["hub_auth"] = 0
                STATE["cdn_tokens"] = 0
                STATE["cdn_token_values"] = []
                STATE["third_requests"] = 0
                STATE["faults_fired"] = {}
            return self.send_json(200, {"ok": True})
        if u.path == "/_control/stats":
            with LOCK:
                snap = json.loads(json.dumps(STATE))
            return self.send_json(200, snap)
        self.error(404, "NotFound", "no such control")

    def api(self, u):
        parts = u.path[len("/api/models/"):]
        m = re.match(r"^([^/]+)/([^/]+)/(revision|tree|refs)(?:/(.*))?$", parts)
        if not m:
            return self.error(404, "NotFound", "no such endpoint")
        org, name, kind, rest = m.group(1), m.group(2), m.group(3), m.group(4) or ""
        repo = self.repo_or_error(org, name)
        if repo is None or not self.check_access(repo):
            return
        if kind == "refs":
            return self.send_json(200, {
                "branches": [{"name": k, "ref": "refs/heads/" + k, "targetCommit": v}
                             for k, v in sorted(repo.branches.items())],
                "tags": [{"name": k, "ref": "refs/tags/" + k, "targetCommit": v}
                         for k, v in sorted(repo.tags.items())],
                "converts": [],
            })
        rest = urllib.parse.unquote(rest)
        rev, sub = split_rev(rest)
        commit = repo.resolve(rev)
        if commit is None:
            return self.error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
        f = take_fault(kind, ("badjson", "badtypes", "badsha", "link-offsite"))
        if kind == "tree":
            h = take_fault(kind, ("hugepage", "manyvalues", "bigpages", "endless",
                                  "slowpages"))
            if h:
                return self.hostile_page(h, u)
        if f == "badjson":
            body = b"<html>not json</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return self.wfile.write(body)
        if f == "badsha":
            return self.send_json(200, {"sha": commit[:12], "siblings": []})
        if f == "badtypes":
            return self.send_json(200, [{"type": "file", "path": "x", "size": "12"}]
                                  if kind == "tree" else {"sha": 12})
        if f == "link-offsite":
            return self.send_json(200, [], {"Link": '<http://localhost:%d/api/models/%s/tree/'
                                                    '%s?cursor=2>; rel="next"'
                                            % (CFG["third_port"], repo.id, commit)})
        if kind == "revision":
            if sub:
                return self.error(404, "RevisionNotFound", "Invalid rev id: %s" % rest)
            blobs = urllib.parse.parse_qs(u.query).get("blobs", ["false"])[0] == "true"
            sib = []
            for rel, full in repo.files(commit):
                s = {"rfilename": rel}
                if blobs:
                    s.update(self.entry(rel, full))
                    s.pop("path", None)
                    s.pop("type", None)
                    s["blobId"] = s.pop("oid")
                sib.append(s)
            return self.send_json(200, {"_id": commit, "id": repo.id, "modelId": repo.id,
                                        "sha": commit, "private": False,
                                        "gated": "manual" if repo.gated else False,
                                        "siblings": sib},
                                  {"X-Repo-Commit": commit})
        # tree
        q = urllib.parse.parse_qs(u.query)
        recursive = q.get("recursive", ["false"])[0] == "true"
        cursor = int(q.get("cursor", ["0"])[0] or 0)
        sub = sub.strip("/")
        entries = []
        for d in repo.dirs(commit):
            if self.in_tree(d, sub, recursive):
                entries.append({"type": "directory", "path": d,
                                "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0})
        for rel, full in repo.files(commit):
            if self.in_tree(rel, sub, recursive):
                entries.append(self.entry(rel, full))
        entries.sort(key=lambda e: e["path"])
        if sub and not entries and not os.path.isdir(os.path.join(repo.dir, commit, sub)):
            return self.error(404, "EntryNotFound", "%s does not exist" % sub,
                              {"X-Repo-Commit": commit})
        page = entries[cursor:cursor + CFG["page_size"]]
        headers = {"X-Repo-Commit": commit}
        if cursor + CFG["page_size"] < len(entries):
            nq = dict((k, v[0]) for k, v in q.items())
            nq["cursor"] = str(cursor + CFG["page_size"])
            headers["Link"] = '<%s%s?%s>; rel="next"' % (self.base_url(), u.path,
                                                         urllib.parse.urlencode(nq))
        return self.send_json(200, page, headers)

    # --- hostile switches of the network side ---
    def hostile_page(self, kind, u):
        """A listing page meant to cost the client memory (see the docstring)."""
        q = dict(urllib.parse.parse_qsl(u.query))
        cursor = int(q.get("cursor", "0") or 0)
        q["cursor"] = str(cursor + 1)
        nxt = '<%s%s?%s>; rel="next"' % (self.base_url(), u.path, urllib.parse.urlencode(q))
        if kind == "hugepage":
            n, piece, head, tail = (64 << 20) // 3, b"{},", b"[", b"{}]"
        elif kind == "manyvalues":
            n, piece, head, tail = ((4 << 20) - 16) // 3, b"[],", b"[", b"[]]"
        else:
            body = b"[]"
            if kind == "slowpages":
                time.sleep(0.5)
            if kind == "bigpages":
                body = json.dumps([
                    {"type": "file", "size": 1, "oid": "0" * 40,
                     "path": "p%06d/%05d/%s" % (cursor, i, "x" * 985)}
                    for i in range(2000)]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Link", nxt)
            self.end_headers()
            return self.wfile.write(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(head) + n * len(piece) + len(tail)))
        self.end_headers()
        self.wfile.write(head)
        block = piece * 65536
        left = n
        while left > 0:
            k = min(left, 65536)
            self.wfile.write(block if k == 65536 else piece * k)
            left -= k
        self.wfile.write(tail)

    @staticmethod
    def in_tree(path, sub, recursive):
        if sub:
            if not path.startswith(sub + "/"):
                return False
            path = path[len(sub) + 1:]
        return recursive or "/" not in path

    def entry(self, rel, full):
        size = os.path.getsize(full)
        sha, git = file_hashes(full)
        if is_lfs(rel, size):
            ptr = lfs_pointer(sha, size)
            return {"type": "file", "path": rel, "oid": git_blob_oid(ptr), "size": size,
                    "lfs": {"oid": sha, "size": size, "pointerSize": len(ptr)}}
        return {"type": "file", "path": rel, "oid": git, "size": size}

    def resolve_file(self, org, name, rest):
        repo = self.repo_or_error(org, name)
        if repo is None or not self.check_access(repo):
            return
        rest = urllib.parse.unquote(rest)
        rev, rel = split_rev(rest)
        commit = repo.resolve(rev)
        if commit is None:
            return self.error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
        full = os.path.normpath(os.path.join(repo.dir, commit, rel))
        base = os.path.join(repo.dir, commit)
        if not rel or not full.startswith(base + os.sep) or not os.path.isfile(full):
            return self.error(404, "EntryNotFound", "%s does not exist" % rel,
                              {"X-Repo-Commit": commit})
        bump("ranges", "%s %s" % (rel, self.headers.get("Range", "-")))
        f = take_fault(rel, ("redirect-file", "redirect-third", "redirect-loop"))
        if f == "redirect-loop":
            return self.redirect(self.base_url() + self.path, {})
        if f == "redirect-file":
            return self.redirect("file:///etc/passwd", {})
        if f == "redirect-third":
            return self.redirect("http://localhost:%d/%s" % (CFG["third_port"], rel), {})
        size = os.path.getsize(full)
        sha, git = file_hashes(full)
        if is_lfs(rel, size):
            loc = "http://%s:%d/cdn/%s/%s/%s/%s?sig=%s" % (
                CFG["bind"], CFG["cdn_port"], org, name, commit, urllib.parse.quote(rel),
                hashlib.sha1(os.urandom(8)).hexdigest())
            return self.redirect(loc, {"X-Repo-Commit": commit,
                                       "X-Linked-Etag": '"%s"' % sha,
                                       "X-Linked-Size": str(size),
                                       "ETag": '"%s"' % git_blob_oid(lfs_pointer(sha, size))})
        self.serve_bytes(full, rel, {"ETag": '"%s"' % git, "X-Repo-Commit": commit})

    def redirect(self, loc, headers):
        self.send_response(302)
        self.send_header("Location", loc)
        self.send_header("Content-Length", "0")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def cdn(self, u):
        if "Authorization" in self.headers:
            with LOCK:
                STATE["cdn_tokens"] += 1
                STATE["cdn_token_values"].append(self.headers["Authorization"][:16] + "...")
        m = re.match(r"^/cdn/([^/]+)/([^/]+)/([0-9a-f]{40})/(.+)$", u.path)
        if not m or "sig=" not in u.query:
            return self.error(403, "AccessDenied", "bad signature")
        repo = find_repo(m.group(1), m.group(2))
        rel = urllib.parse.unquote(m.group(4))
        if repo is None:
            return self.error(404, "NoSuchKey", "no such object")
        base = os.path.join(repo.dir, m.group(3))
        full = os.path.normpath(os.path.join(base, rel))
        if not full.startswith(base + os.sep) or not os.path.isfile(full):
            return self.error(404, "NoSuchKey", "no such object")
        bump("ranges", "cdn %s %s" % (rel, self.headers.get("Range", "-")))
        self.serve_bytes(full, rel, {"ETag": '"%s"' % file_hashes(full)[0]})

    # --- the bytes, with faults ---
    def serve_bytes(self, full, rel, headers):
        size = os.path.getsize(full)
        rng = parse_range(self.headers.get("Range"), size)
        fault = take_fault(rel, ("cut", "full200", "corrupt", "stall", "429", "503",
                                 "badrange", "drip"))
        if fault == "429":
            return self.error(429, "TooManyRequests", "slow down", {"Retry-After": "1"})
        if fault == "503":
            return self.error(503, "ServiceUnavailable", "try again")
        if rng == "bad":
            return self.error(416, "RangeNotSatisfiable", "range not satisfiable",
                              {"Content-Range": "bytes */%d" % size})
        if rng is None or fault == "full200":
            start, end, status = 0, size - 1, 200
        else:
            start, end = rng
            status = 206
        n = end - start + 1 if size else 0
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        if status == 206:
            a, b = (start + 1, end + 1) if fault == "badrange" else (start, end)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (a, b, size))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault == "stall":
            self.wfile.flush()
            time.sleep(CFG["stall_seconds"])
            self.close_connection = True
            return
        if fault == "drip":
            # One byte a second, for as long as the client listens (a write
            # to a closed connection ends it) or the hub lives.
            self.close_connection = True
            with open(full, "rb") as f:
                f.seek(start)
                for _ in range(n):
                    self.wfile.write(f.read(1))
                    self.wfile.flush()
                    time.sleep(1)
            return
        with open(full, "rb") as f:
            if fault is None and n > 0:
                self.wfile.flush()
                sent = 0
                sock = self.connection.fileno()
                while sent < n:
                    k = os.sendfile(sock, f.fileno(), start + sent, min(n - sent, 8 * CHUNK))
                    if k <= 0:
                        break
                    sent += k
                return
            f.seek(start)
            left = n
            limit = n // 2 if fault == "cut" else n
            first = True
            while left > 0 and n - left < limit:
                b = f.read(min(CHUNK, left, limit - (n - left)))
                if not b:
                    break
                if fault == "corrupt" and first:
                    b = bytes([b[0] ^ 0xFF]) + b[1:]
                first = False
                self.wfile.write(b)
                left -= len(b)
            if fault == "cut":
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def make_server(port, role):
    cls = type("H_" + role.replace("-", "_"), (Handler,), {"role": role})
    srv = ThreadingHTTPServer((CFG["bind"], port), cls)
    srv.daemon_threads = True
    return srv


def watchdog(lifetime, parent):
    end = time.monotonic() + lifetime
    while time.monotonic() < end:
        if os.getppid() != parent:
            break
        time.sleep(0.5)
    os._exit(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cdn-port", type=int, default=0)
    ap.add_argument("--token", default="hf_testtoken")
    ap.add_argument("--page-size", type=int, default=2)
    ap.add_argument("--lfs-threshold", type=int, default=10 * 1024 * 1024)
    ap.add_argument("--stall-seconds", type=float, default=30.0)
    ap.add_argument("--fault", action="append", default=[])
    ap.add_argument("--ready")
    ap.add_argument("--lifetime", type=float, default=600.0)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--bind", default="127.0.0.1")
    a = ap.parse_args()
    CFG["bind"] = a.bind
    CFG.update(root=os.path.abspath(a.root), token=a.token, page_size=max(1, a.page_size),
               lfs_threshold=a.lfs_threshold, stall_seconds=a.stall_seconds,
               verbose=a.verbose)
    for spec in a.fault:
        p = spec.split(":")
        add_fault(p[0], p[1] if len(p) > 1 else "*", int(p[2]) if len(p) > 2 else 1)
    hub = make_server(a.port, "hub")
    cdn = make_server(a.cdn_port, "cdn")
    third = make_server(0, "third")
    CFG["cdn_port"] = cdn.server_address[1]
    CFG["third_port"] = third.server_address[1]
    for s in (hub, cdn, third):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    line = "READY %d %d %d\n" % (hub.server_address[1], CFG["cdn_port"], CFG["third_port"])
    if a.ready:
        tmp = a.ready + ".tmp"
        with open(tmp, "w") as f:
            f.write(line)
        os.rename(tmp, a.ready)
    sys.stdout.write(line)
    sys.stdout.flush()
    watchdog(a.lifetime, os.getppid())


if __name__ == "__main__":
    main()

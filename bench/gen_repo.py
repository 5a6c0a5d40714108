#!/usr/bin/env python3
"""Synthetic git history for bench/extract.sh, written through `git fast-import`.

A deterministic function of --seed: a project that grows from a few hundred files to a few
thousand in nested directories, where most commits touch one to three files, some touch dozens
and a few rewrite hundreds (a licence header, a rename of a symbol); with topic branches merged
back (merge commits), release branches with cherry-picks, annotated tags, binary files, symlinks,
a submodule, renames (a deletion plus an addition, as --no-renames sees them), mode changes, and
commit messages carrying every trailer of DESIGN.md "The graph" in the ways git's trailer rules
care about (folded values, mixed blocks, git-generated lines, trailer-like lines outside the
last paragraph, comment and scissors tails, CRLF), a few in ISO-8859-1 with an `encoding`
header and a few with invalid UTF-8. The result is repacked like a server would (git repack
-a -d -f: window 10, depth 50), so its delta chains look like a clone's.

Usage: gen_repo.py --out DIR [--commits N] [--seed S] [--no-repack]
       gen_repo.py --out DIR --stdlib-history [PYENV_VERSIONS_DIR]

The second form makes a history of real code instead: the standard library of every Python
found under PYENV_VERSIONS_DIR (default /root/.pyenv/versions), oldest release first, one commit
per directory batch (at most 4 files) of what changed from one release to the next, repacked the
same way. It is the real-code check of docs/internals/extraction.md (2,980 commits from Python
2.7.18 ... 3.13.0 on the reference machine).
"""
import argparse
import os
import random
import subprocess
import sys
import time

TRAILER_KEYS = [
    "Signed-off-by", "Reviewed-by", "Tested-by", "Co-authored-by", "Reported-by", "Acked-by",
    "Approved-by", "Helped-by", "Suggested-by", "Mentored-by", "Cc", "Informed-by",
    "Resolved-by",
]
OTHER_KEYS = ["Fixes", "Link", "Change-Id", "Bug", "Closes", "See-also"]
FIRST = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
         "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter",
         "José", "Zoë", "François", "Ångström", "Łukasz", "Søren", "Jürgen", "Chloé",
         "Dmitrij", "Małgorzata", "Nuño", "Émile", "Björn", "山田", "李", "Ørjan"]
LAST = ["Smith", "Jones", "Müller", "García", "Kowalski", "Nakamura", "Dubois", "Rossi",
        "Novák", "Andersson", "O'Brien", "van der Berg", "Nguyen", "Schröder", "Pérez",
        "Ivanov", "Haddad", "Kim", "Patel", "Larsen", "太郎", "Çelik"]
ZONES = ["+0000", "+0100", "+0200", "-0700", "-0400", "+0530", "+0900", "-0330", "+1000",
         "-0800", "+0545", "+1300", "-1000"]
WORDS = ("buffer event socket request parse config handle queue timer flush read write close "
         "open state error limit count offset length index table entry node list map key value "
         "result status header body client server stream frame packet chunk cache pool lock "
         "thread worker task job signal retry backoff token auth session user group repo "
         "commit tree blob diff patch line hunk file path name data size type mode flag").split()
DIRS = ["src", "src/core", "src/net", "src/util", "src/proto", "src/store", "src/net/http",
        "src/net/tls", "src/core/sched", "include", "include/proj", "include/proj/internal",
        "lib", "lib/compat", "tests", "tests/unit", "tests/integration", "tests/fixtures",
        "docs", "docs/api", "docs/internals", "tools", "tools/build", "scripts", "examples",
        "bench", "contrib/extra", "contrib/legacy/old", "third_party/zlite", "web/static/css"]
EXTS = [".c", ".c", ".c", ".h", ".h", ".py", ".md", ".txt", ".json", ".sh", ".go", ".rs"]
COMMON = ["\n", "\n", "\n", "\n", "}\n", "\t}\n", "{\n", "\treturn 0;\n", "\t\tbreak;\n",
          "#endif\n", "\treturn rc;\n", "\t}\n", "\telse\n", "done:\n", "\n", "    pass\n",
          " */\n", "/*\n", "\t\t}\n", "};\n"]
LICENSE = ["/*\n", " * Copyright (c) 2010-2024 The Project Authors.\n",
           " * SPDX-License-Identifier: BSD-3-Clause\n", " */\n"]


class Gen:
    def __init__(self, seed, commits):
        self.r = random.Random(seed)
        self.target = commits
        self.people = []
        for i in range(420):
            first, last = self.r.choice(FIRST), self.r.choice(LAST)
            email = "%s.%s%d@%s" % (first.lower(), last.lower().replace(" ", ""), i,
                                    self.r.choice(["example.com", "example.org", "Mail.Example.NET"]))
            if self.r.random() < 0.05:
                email = email.upper()
            self.people.append(("%s %s" % (first, last), email, self.r.choice(ZONES)))
        self.maintainers = self.people[:6]
        self.pool = [self.fresh_line() for _ in range(20000)]
        self.time = 1262304000  # 2010-01-01
        self.mark = 0
        self.out = []
        self.shas = []  # marks of main commits, for Fixes: and cherry-picks

    # ---- content ----

    def fresh_line(self):
        r = self.r
        indent = "\t" * r.choice([0, 1, 1, 1, 2, 2, 3])
        kind = r.random()
        w = lambda: r.choice(WORDS)
        if kind < 0.35:
            return "%s%s_%s = %s(%s, %d);\n" % (indent, w(), w(), w(), w(), r.randint(0, 999))
        if kind < 0.55:
            return "%sif (%s->%s %s %s)\n" % (indent, w(), w(), r.choice(["==", "!=", "<", ">="]), w())
        if kind < 0.7:
            return "%s/* %s %s %s %s */\n" % (indent, w(), w(), w(), w())
        if kind < 0.8:
            return "%sstatic int %s_%s(struct %s *%s)\n" % ("", w(), w(), w(), w()[0])
        if kind < 0.9:
            return "%s%s(%s, \"%s %s\");\n" % (indent, r.choice(["log_debug", "printf", "assert"]), w(), w(), w())
        return "%s%s %s;\n" % (indent, r.choice(["int", "size_t", "char *", "long", "bool"]), w())

    def line(self):
        x = self.r.random()
        if x < 0.22:
            return self.r.choice(COMMON)
        if x < 0.9:
            return self.r.choice(self.pool)
        s = self.fresh_line()
        self.pool[self.r.randrange(len(self.pool))] = s
        return s

    def new_text(self, big=False):
        n = int(self.r.lognormvariate(4.6, 0.9)) + 1  # median ~100 lines
        if big:
            n = self.r.randint(3000, 9000)
        n = min(n, 12000)
        lines = list(LICENSE) if self.r.random() < 0.5 else []
        lines += [self.line() for _ in range(n)]
        if self.r.random() < 0.03 and lines:
            lines[-1] = lines[-1].rstrip("\n")  # no newline at end of file
        return lines

    def edit(self, lines):
        r = self.r
        x = r.random()
        if not lines or x < 0.02:
            return self.new_text()
        if x < 0.04 and len(lines) > 40:  # a big rewrite: many changes, exercises xdiff's heuristics
            out = []
            for l in lines:
                y = r.random()
                if y < 0.35:
                    out.append(self.line())
                elif y < 0.45:
                    continue
                else:
                    out.append(l)
                if r.random() < 0.1:
                    out.append(self.line())
            return out
        if x < 0.09 and len(lines) > 20:  # move a block
            a = r.randrange(len(lines) - 10)
            n = r.randint(3, min(40, len(lines) - a))
            block = lines[a:a + n]
            rest = lines[:a] + lines[a + n:]
            b = r.randrange(len(rest) + 1)
            return rest[:b] + block + rest[b:]
        if x < 0.12:  # reindent a region
            a = r.randrange(len(lines))
            n = r.randint(1, 30)
            return lines[:a] + [("\t" + l if l != "\n" else l) for l in lines[a:a + n]] + lines[a + n:]
        for _ in range(min(8, int(r.expovariate(0.8)) + 1)):
            a = r.randrange(len(lines) + 1)
            rm = min(len(lines) - a, int(r.expovariate(0.3)))
            add = int(r.expovariate(0.25)) if r.random() < 0.85 else 0
            lines = lines[:a] + [self.line() for _ in range(add)] + lines[a + rm:]
        if r.random() < 0.02 and lines:  # toggle the final newline
            last = lines[-1]
            lines = lines[:-1] + [last.rstrip("\n") if last.endswith("\n") else last + "\n"]
        return lines

    def binary(self, old=None):
        r = self.r
        if old is None or r.random() < 0.3:
            n = r.randint(64, 20000)
            return bytes(r.getrandbits(8) for _ in range(16)) + b"\0" + bytes(r.randrange(256) for _ in range(n))
        b = bytearray(old)
        for _ in range(r.randint(1, 5)):
            i = r.randrange(len(b))
            b[i:i + r.randint(1, 50)] = bytes(r.randrange(256) for _ in range(r.randint(0, 60)))
        return bytes(b)

    # ---- messages ----

    def person(self):
        return self.r.choice(self.people)

    def trailer(self, key=None):
        r = self.r
        key = key or r.choice(TRAILER_KEYS)
        name, email, _ = self.person()
        v = "%s <%s>" % (name, email)
        if r.random() < 0.03:
            v = name  # no email: not an activity
        if r.random() < 0.02:
            key = key.lower() if r.random() < 0.5 else key.upper()
        return "%s: %s" % (key, v)

    def other_trailer(self):
        r = self.r
        k = r.choice(OTHER_KEYS)
        if k == "Fixes":
            return "Fixes: %012x (\"%s %s\")" % (r.getrandbits(48), r.choice(WORDS), r.choice(WORDS))
        if k == "Link":
            return "Link: https://lore.example.org/r/%d.%s@example.org" % (r.getrandbits(40), r.choice(WORDS))
        if k == "Change-Id":
            return "Change-Id: I%040x" % r.getrandbits(160)
        return "%s: #%d" % (k, r.randint(1, 99999))

    def paragraph(self):
        r = self.r
        return "\n".join(" ".join(r.choice(WORDS) for _ in range(r.randint(4, 12)))
                         for _ in range(r.randint(1, 4)))

    def message(self):
        r = self.r
        subject = "%s: %s the %s %s" % (r.choice(WORDS), r.choice(["fix", "add", "remove", "rework", "speed up", "document"]),
                                         r.choice(WORDS), r.choice(WORDS))
        parts = [subject]
        for _ in range(r.choice([0, 0, 1, 1, 1, 2, 3])):
            parts.append(self.paragraph())
        x = r.random()
        block = []
        if x < 0.35:
            pass
        elif x < 0.6:
            block = [self.trailer("Signed-off-by") for _ in range(r.randint(1, 3))]
        elif x < 0.85:
            block = [self.trailer() for _ in range(r.randint(1, 6))]
            if r.random() < 0.5:
                block.append(self.trailer("Signed-off-by"))
            if r.random() < 0.4:
                block.insert(r.randrange(len(block) + 1), self.other_trailer())
        elif x < 0.89:  # folded value
            block = [self.trailer(), self.trailer("Reviewed-by") + " and", "  " + self.trailer("Tested-by")[11:]]
        elif x < 0.92:  # mixed block: a git-generated line makes it count at 25%
            block = [self.trailer("Signed-off-by"), "some note without a colon", "another line",
                     self.trailer("Acked-by")]
        elif x < 0.94:  # mixed block without a git-generated line: not trailers
            block = [self.trailer("Reviewed-by"), "a line that is not a trailer"]
        elif x < 0.955:
            block = ["(cherry picked from commit %040x)" % r.getrandbits(160), self.trailer("Signed-off-by")]
        elif x < 0.97:  # trailer-like lines, but not in the last paragraph
            parts.append("\n".join(self.trailer() for _ in range(2)))
            parts.append(self.paragraph())
        elif x < 0.98:  # a "---" line: git log's %(trailers) reads through it
            block = [self.trailer(), "---", self.trailer("Cc")]
        elif x < 0.99:  # comment and scissors tails are not the message's end
            block = [self.trailer("Tested-by")]
            parts.append("\n".join(block))
            block = []
            parts.append("# a comment\n# ------------------------ >8 ------------------------\n"
                         + self.trailer("Reported-by"))
        else:
            block = [self.trailer("Key with space"), "Key :" + self.trailer()[3:], self.trailer("Informed-by")]
        if block:
            parts.append("\n".join(block))
        msg = "\n\n".join(parts) + "\n"
        if r.random() < 0.01:
            msg = msg.replace("\n", "\r\n")
        if r.random() < 0.01:
            msg += "\n\n"
        return msg

    # ---- fast-import ----

    def emit(self, s):
        self.out.append(s if isinstance(s, bytes) else s.encode("utf-8", "surrogateescape"))

    def data(self, payload):
        if isinstance(payload, str):
            payload = payload.encode("utf-8", "surrogateescape")
        self.emit(b"data %d\n" % len(payload))
        self.emit(payload)
        self.emit(b"\n")

    def ident(self, who, when):
        name, email, tz = who
        return "%s <%s> %d %s" % (name, email, when, tz)

    def commit(self, ref, parent_marks, changes, msg=None, author=None, committer=None):
        r = self.r
        self.mark += 1
        self.time += int(r.expovariate(1 / 3000.0)) + 30
        author = author or self.person()
        committer = committer or (author if r.random() < 0.8 else r.choice(self.maintainers))
        adate = self.time - (r.randint(0, 86400 * 3) if committer is not author else 0)
        msg = msg if msg is not None else self.message()
        encoding = None
        raw = msg.encode("utf-8")
        aid = self.ident(author, adate).encode("utf-8")
        x = r.random()
        if x < 0.005:  # latin-1 with a header: converted by git log
            encoding = "ISO-8859-1"
            raw = (msg + "Caf\u00e9 cr\u00e8me \u00e0 la fran\u00e7aise\n").encode("latin-1", "replace")
            aid = self.ident(("Jos\u00e9 L\u00f3pez", "jose@example.es", "+0100"), adate).encode("latin-1")
        elif x < 0.007:  # invalid UTF-8 without a header
            raw = raw + b"broken \xff\xfe bytes \xc3\n"
        self.emit("commit %s\nmark :%d\n" % (ref, self.mark))
        self.emit(b"author " + aid + b"\n")
        self.emit("committer %s\n" % self.ident(committer, self.time))
        if encoding:
            self.emit("encoding %s\n" % encoding)
        self.data(raw)
        if parent_marks:
            self.emit("from :%d\n" % parent_marks[0])
            for m in parent_marks[1:]:
                self.emit("merge :%d\n" % m)
        for ch in changes:
            if ch[0] == "D":
                self.emit("D %s\n" % ch[1])
            elif ch[0] == "L":
                self.emit("M 160000 %s %s\n" % (ch[2], ch[1]))
            else:
                _, path, mode, content = ch
                self.emit("M %s inline %s\n" % (mode, path))
                self.data(content)
        self.emit(b"\n")
        return self.mark

    def flush(self, proc):
        proc.stdin.write(b"".join(self.out))
        self.out = []


class Tree:
    """The files of one line of history: path -> [mode, lines or bytes], plus an indexable list
    of the paths so that picking one at random costs O(1)."""

    def __init__(self, other=None):
        self.files = {}
        self.paths = []
        self.index = {}
        if other is not None:
            for p in other.paths:
                self.put(p, [other.files[p][0], other.files[p][1]])

    def put(self, path, entry):
        if path not in self.files:
            self.index[path] = len(self.paths)
            self.paths.append(path)
        self.files[path] = entry

    def remove(self, path):
        i = self.index.pop(path)
        last = self.paths.pop()
        if last != path:
            self.paths[i] = last
            self.index[last] = i
        del self.files[path]

    def content(self, path):
        mode, body = self.files[path]
        return body if isinstance(body, bytes) else "".join(body)


def new_path(g, tree):
    while True:
        d = g.r.choice(DIRS)
        p = "%s/%s_%s%s" % (d, g.r.choice(WORDS), g.r.choice(WORDS), g.r.choice(EXTS))
        if p not in tree.files:
            return p


def pick(g, tree, locked, only):
    if only is not None:
        cand = [p for p in only if p in tree.files]
        return g.r.choice(cand) if cand else None
    for _ in range(10):
        p = g.r.choice(tree.paths)
        if p not in locked:
            return p
    return None


def change_files(g, tree, locked, only=None):
    """Picks and applies this commit's file changes; returns fast-import changes. only: the
    sorted paths a topic branch may touch (besides the files it adds)."""
    r = g.r
    x = r.random()
    n = 1 if x < 0.6 else 2 if x < 0.8 else r.randint(3, 5) if x < 0.9 else \
        r.randint(6, 20) if x < 0.975 else r.randint(21, 100) if x < 0.998 else r.randint(101, 400)
    changes = []
    touched = set()
    for _ in range(n):
        y = r.random()
        p = pick(g, tree, locked, only) if y >= 0.03 else None
        if p is None:  # add
            p = new_path(g, tree)
            if r.random() < 0.04:
                p += ".bin"
                tree.put(p, ["100644", g.binary()])
            else:
                tree.put(p, ["100755" if r.random() < 0.05 else "100644", g.new_text(big=r.random() < 0.01)])
            changes.append(("M", p, tree.files[p][0], tree.content(p)))
            continue
        if p in touched:
            continue
        touched.add(p)
        mode, body = tree.files[p]
        if y < 0.065 and len(tree.files) > 50:  # delete
            tree.remove(p)
            changes.append(("D", p))
        elif y < 0.085:  # rename (maybe with an edit)
            q = new_path(g, tree)
            tree.remove(p)
            if not isinstance(body, bytes) and mode != "120000" and r.random() < 0.5:
                body = g.edit(body)
            tree.put(q, [mode, body])
            touched.add(q)
            changes.append(("D", p))
            changes.append(("M", q, mode, tree.content(q)))
        elif y < 0.09 and mode != "120000":  # mode change
            tree.files[p][0] = "100755" if mode == "100644" else "100644"
            changes.append(("M", p, tree.files[p][0], tree.content(p)))
        elif mode == "120000":
            tree.files[p][1] = ["../%s/%s" % (r.choice(WORDS), r.choice(WORDS))]
            changes.append(("M", p, mode, tree.content(p)))
        elif isinstance(body, bytes):
            tree.files[p][1] = g.binary(body)
            changes.append(("M", p, mode, tree.content(p)))
        else:
            tree.files[p][1] = g.edit(body)
            changes.append(("M", p, mode, tree.content(p)))
    if r.random() < 0.002:  # a symlink
        p = new_path(g, tree)
        tree.put(p, ["120000", ["../include/%s.h" % r.choice(WORDS)]])
        changes.append(("M", p, "120000", tree.content(p)))
    return changes


def stdlib_files(root):
    """The text files of one Python's lib/pythonX.Y, by path."""
    files = {}
    for dp, dn, fn in os.walk(root):
        dn[:] = sorted(d for d in dn if d not in ("__pycache__", "site-packages")
                       and not d.startswith("config-"))
        for f in sorted(fn):
            path = os.path.join(dp, f)
            if not f.endswith((".py", ".txt", ".c", ".h", ".cfg", ".html", ".xml", ".rst")) \
                    or os.path.islink(path):
                continue
            with open(path, "rb") as fh:
                data = fh.read()
            if len(data) <= 3000000:
                files["lib/" + os.path.relpath(path, root)] = data
    return files


def stdlib_history(out, versions_dir, env):
    def key(v):
        return [int(x) if x.isdigit() else x for x in v.split(".")]
    roots = []
    for v in sorted(os.listdir(versions_dir), key=key):
        lib = os.path.join(versions_dir, v, "lib", "python" + ".".join(v.split(".")[:2]))
        if os.path.isdir(lib):
            roots.append((v, lib))
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", out], check=True, env=env)
    proc = subprocess.Popen(["git", "-C", out, "fast-import", "--quiet"], stdin=subprocess.PIPE,
                            env=env)
    mark, when, current = 0, 1500000000, {}
    for version, lib in roots:
        new = stdlib_files(lib)
        changed = [f for f in sorted(set(current) | set(new)) if current.get(f) != new.get(f)]
        batches = []
        for f in changed:
            if not batches or len(batches[-1]) == 4 or \
                    os.path.dirname(batches[-1][0]) != os.path.dirname(f):
                batches.append([])
            batches[-1].append(f)
        for batch in batches:
            mark += 1
            when += 600
            msg = ("Update %s to %s\n\nSigned-off-by: Py Dev <dev%d@example.org>\n"
                   % (os.path.dirname(batch[0]), version, mark % 50)).encode()
            parts = [b"commit refs/heads/main\nmark :%d\nauthor D <d@x> %d +0100\n"
                     b"committer D <d@x> %d +0100\ndata %d\n%s\n" % (mark, when, when, len(msg), msg)]
            if mark > 1:
                parts.append(b"from :%d\n" % (mark - 1))
            for f in batch:
                if f in new:
                    parts.append(b"M 100644 inline %s\ndata %d\n%s\n" % (f.encode(), len(new[f]), new[f]))
                else:
                    parts.append(b"D %s\n" % f.encode())
            parts.append(b"\n")
            proc.stdin.write(b"".join(parts))
        current = new
    proc.stdin.close()
    if proc.wait() != 0:
        sys.exit("fast-import failed")
    return mark


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--commits", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-repack", action="store_true")
    ap.add_argument("--stdlib-history", nargs="?", const="/root/.pyenv/versions", default=None,
                    metavar="PYENV_VERSIONS_DIR")
    args = ap.parse_args()

    t0 = time.time()
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
    if args.stdlib_history is not None:
        made = stdlib_history(args.out, args.stdlib_history, env)
        subprocess.run(["git", "-C", args.out, "repack", "-a", "-d", "-f", "-q", "--window=10",
                        "--depth=50"], check=True, env=env)
        print("generated %s: %d commits of real code in %.1f s" % (args.out, made, time.time() - t0),
              file=sys.stderr)
        return
    g = Gen(args.seed, args.commits)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", args.out], check=True, env=env)
    proc = subprocess.Popen(["git", "-C", args.out, "fast-import", "--quiet", "--depth=50"],
                            stdin=subprocess.PIPE, env=env)
    main_tree = Tree()
    initial = []
    for _ in range(350):
        p = new_path(g, main_tree)
        main_tree.put(p, ["100644", g.new_text()])
        initial.append(("M", p, "100644", main_tree.content(p)))
    head = g.commit("refs/heads/main", [], initial, msg="Initial import\n")
    made = 1
    topics = []  # [ref, head mark, Tree, set of locked paths, commits left, base mark]
    releases = []
    merged = []
    topic_no = 0
    while made < args.commits:
        r = g.r
        if len(topics) < 4 and r.random() < 0.08:
            topic_no += 1
            t_tree = Tree(main_tree)
            locked = set(r.sample(main_tree.paths, min(len(main_tree.paths), r.randint(2, 12))))
            topics.append(["refs/heads/topic/%d" % topic_no, head, t_tree, locked, r.randint(1, 6), head])
        if topics and r.random() < 0.25:
            t = r.choice(topics)
            changes = change_files(g, t[2], set(), only=sorted(t[3]))
            t[3].update(c[1] for c in changes)
            if changes:
                t[1] = g.commit(t[0], [t[1]], changes)
                made += 1
            t[4] -= 1
            if t[4] <= 0:  # merge it into main: main's tree plus the topic's paths
                merge_changes = []
                for p in sorted(t[3]):
                    if p in t[2].files:
                        main_tree.put(p, [t[2].files[p][0], t[2].files[p][1]])
                        merge_changes.append(("M", p, main_tree.files[p][0], main_tree.content(p)))
                    elif p in main_tree.files:
                        main_tree.remove(p)
                        merge_changes.append(("D", p))
                head = g.commit("refs/heads/main", [head, t[1]], merge_changes,
                                msg="Merge branch 'topic/%s'\n\n* topic:\n  %s\n" % (t[0].split("/")[-1], g.paragraph().split("\n")[0]),
                                committer=r.choice(g.maintainers))
                made += 1
                if r.random() < 0.9:  # merged topics are usually deleted
                    merged.append(t[0])
                topics.remove(t)
            continue
        locked = set()
        for t in topics:
            locked |= t[3]
        changes = change_files(g, main_tree, locked)
        if r.random() < 0.001:  # a submodule appears or moves
            changes.append(("L", "third_party/vendored", "%040x" % r.getrandbits(160)))
        head = g.commit("refs/heads/main", [head], changes)
        g.shas.append(head)
        made += 1
        if made % 5000 == 0:
            rel = "refs/heads/release-%d" % (made // 5000)
            releases.append([rel, head])
            g.emit("reset %s\nfrom :%d\n\n" % (rel, head))
            g.emit("tag v%d.0\nfrom :%d\ntagger %s\ndata <<EOT\nRelease %d.0\nEOT\n\n"
                   % (made // 5000, head, g.ident(g.maintainers[0], g.time), made // 5000))
        elif made % 997 == 0:
            g.emit("reset refs/tags/snapshot-%d\nfrom :%d\n\n" % (made, head))
        if releases and r.random() < 0.004:  # a cherry-pick onto a release branch
            rel = r.choice(releases)
            msg = g.message().rstrip("\n") + "\n(cherry picked from commit %040x)\n" % r.getrandbits(160)
            rel[1] = g.commit(rel[0], [rel[1]], [], msg=msg)
            made += 1
        if len(g.out) > 4000:
            g.flush(proc)
    g.flush(proc)
    proc.stdin.close()
    if proc.wait() != 0:
        sys.exit("fast-import failed")
    subprocess.run(["git", "-C", args.out, "update-ref", "--stdin"], check=True, env=env,
                   input="".join("delete %s\n" % ref for ref in merged).encode())
    t1 = time.time()
    if not args.no_repack:
        subprocess.run(["git", "-C", args.out, "repack", "-a", "-d", "-f", "-q", "--window=10",
                        "--depth=50"], check=True, env=env)
        subprocess.run(["git", "-C", args.out, "prune-packed"], check=True, env=env)
    print("generated %s: %d commits in %.1f s, repacked in %.1f s"
          % (args.out, made, t1 - t0, time.time() - t1), file=sys.stderr)


if __name__ == "__main__":
    main()

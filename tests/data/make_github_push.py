#!/usr/bin/env python3
"""Writes github-push.json: a GitHub `push` delivery shaped like the push
payload GitHub documents (ref, before/after, repository with its owner,
pusher, sender, commits[] and head_commit, each commit with added,
removed and modified file lists), with made-up content: 20 commits of 50
files each, about 39 KB. The budget tests (README "Flattening the
payload") use it: its commits alone would take more than 1,024 variables.

    python3 tests/data/make_github_push.py > tests/data/github-push.json
"""
import hashlib
import json
import sys

COMMITS = 20
ADDED, REMOVED, MODIFIED = 10, 5, 35  # 50 files a commit; modified is past 32
REPO = "example-org/deploy-target"


def sha(*parts):
    return hashlib.sha1("/".join(str(p) for p in parts).encode()).hexdigest()


def user(login, uid):
    return {
        "login": login, "id": uid, "node_id": "MDQ6VXNlcj%d" % uid,
        "avatar_url": "https://avatars.example.com/u/%d?v=4" % uid,
        "gravatar_id": "", "url": "https://api.github.com/users/" + login,
        "html_url": "https://github.com/" + login,
        "type": "User", "site_admin": False,
    }


def person(name):
    return {"name": name, "email": name.lower().replace(" ", ".") + "@example.com",
            "username": name.lower().replace(" ", "-")}


def commit(i):
    cid = sha("commit", i)
    files = ["src/mod%02d/file_%03d.c" % (i % 7, i * 50 + f) for f in range(50)]
    return {
        "id": cid, "tree_id": sha("tree", i), "distinct": True,
        "message": "Change %d: adjust the build for module %02d\n\n"
                   "Signed-off-by: Dana Author <dana.author@example.com>" % (i, i % 7),
        "timestamp": "2024-05-%02dT10:%02d:00+02:00" % (1 + i % 28, i % 60),
        "url": "https://github.com/%s/commit/%s" % (REPO, cid),
        "author": person("Dana Author"), "committer": person("Chris Committer"),
        "added": files[:ADDED], "removed": files[ADDED:ADDED + REMOVED],
        "modified": files[ADDED + REMOVED:],
    }


def payload():
    commits = [commit(i) for i in range(COMMITS)]
    owner = dict(user("example-org", 1001), name="example-org",
                 email="ops@example.com", type="Organization")
    return {
        "ref": "refs/heads/main",
        "before": sha("before"), "after": commits[-1]["id"],
        "repository": {
            "id": 424242, "node_id": "R_kgDOExample", "name": "deploy-target",
            "full_name": REPO, "private": True, "owner": owner,
            "html_url": "https://github.com/" + REPO,
            "description": "The service the deploy hook ships", "fork": False,
            "url": "https://github.com/" + REPO,
            "created_at": 1700000000, "updated_at": "2024-05-20T08:00:00Z",
            "pushed_at": 1716200000,
            "git_url": "git://github.com/%s.git" % REPO,
            "ssh_url": "git@github.com:%s.git" % REPO,
            "clone_url": "https://github.com/%s.git" % REPO,
            "homepage": None, "size": 2048, "stargazers_count": 3,
            "watchers_count": 3, "language": "C", "has_issues": True,
            "has_projects": False, "has_wiki": False, "forks_count": 0,
            "archived": False, "disabled": False, "open_issues_count": 2,
            "topics": ["deploy", "webhooks"], "visibility": "private",
            "default_branch": "main", "master_branch": "main",
            "organization": "example-org",
        },
        "pusher": {"name": "dana-author", "email": "dana.author@example.com"},
        "organization": {"login": "example-org", "id": 1001,
                         "url": "https://api.github.com/orgs/example-org"},
        "sender": user("dana-author", 2002),
        "created": False, "deleted": False, "forced": False, "base_ref": None,
        "compare": "https://github.com/%s/compare/%s...%s" % (
            REPO, sha("before")[:12], commits[-1]["id"][:12]),
        "commits": commits,
        "head_commit": commits[-1],
    }


if __name__ == "__main__":
    json.dump(payload(), sys.stdout, indent=None, separators=(",", ":"))
    sys.stdout.write("\n")

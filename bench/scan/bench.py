#!/usr/bin/env python3
"""Reproducible secret-scanner benchmark: tresor vs gitleaks vs Kingfisher,
with ripgrep on a trivial pattern as the I/O ceiling.

Corpus: crate sources from ~/.cargo/registry/src (present on any machine that
built tresor), copied in sorted order up to --max-mb, plus planted secrets and
decoys (one label per file) generated from a fixed seed. The history is a git
repository built from the same corpus (one commit per crate, then small edit
commits), where a third of the planted files are removed again. Scores are per planted file: a tool "hits" a
file when it reports any finding in it. Findings in the real crate sources are
unlabeled and shown separately.
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import plant  # noqa: E402

EDITS_PER_CRATE = 4


def sh(cmd, cwd=None, env=None, check=True):
    return subprocess.run(cmd, cwd=cwd, env=env, check=check, capture_output=True, text=True)


def registry_crates():
    roots = sorted(Path.home().glob(".cargo/registry/src/*"))
    return sorted((c for r in roots for c in r.iterdir() if c.is_dir()), key=lambda p: p.name)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def build_tree(work: Path, max_mb: int):
    tree = work / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    total, crates = 0, []
    for crate in registry_crates():
        size = dir_bytes(crate)
        if total + size > max_mb * 1_000_000:
            continue
        shutil.copytree(crate, tree / crate.name, symlinks=True)
        crates.append(crate.name)
        total += size
    return tree, crates


def plant_files(tree: Path, crates, seed: int, count: int):
    rng = random.Random(seed)
    gen = plant.Gen(rng)
    labels = []
    plantable = [i for i, c in enumerate(crates) if not (tree / c / ".gitignore").exists()]
    makers = [("secret", m) for m in plant.secrets(gen)] + [("decoy", m) for m in plant.decoys(gen)]
    for i in range(2 * count):
        kind = "secret" if i % 2 == 0 else "decoy"
        category, name, make = rng.choice([m for k, m in makers if k == kind])
        # Crates with their own .gitignore may ignore dot files: planting there
        # would test .gitignore handling, not detection.
        crate_index = rng.choice(plantable)
        parent = str(Path(name).parent).lstrip(".") or "conf"
        rel = Path(crates[crate_index]) / f"{parent}-{i}" / Path(name).name
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        labels.append({"path": str(rel), "kind": kind, "category": category, "crate": crate_index})
    return labels


def git_env():
    return dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")


def quote(path: str) -> str:
    if all(c.isalnum() or c in "/._-+@" for c in path):
        return path
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def build_history(work: Path, tree: Path, crates, labels, seed: int):
    """A realistic history through git fast-import: one commit per crate,
    EDITS_PER_CRATE small edit commits per crate after that (each a new
    version of an existing file), planted files added at random points and a
    third of them removed again later."""
    rng = random.Random(seed + 1)
    bare = work / "hist.git"
    if bare.exists():
        shutil.rmtree(bare)
    src = work / "hist-src.git"
    if src.exists():
        shutil.rmtree(src)
    sh(["git", "init", "-q", "--bare", "-b", "main", str(src)], env=git_env())
    planted = {l["path"] for l in labels}
    total = len(crates) * (1 + EDITS_PER_CRATE)
    adds, removes = {}, {}
    for l in labels:
        first = l["crate"]
        l["added"] = rng.randrange(first, total)
        l["removed"] = rng.randrange(l["added"] + 1, total + 1) if rng.random() < 1 / 3 else None
        adds.setdefault(l["added"], []).append(l["path"])
        if l["removed"] is not None and l["removed"] < total:
            removes.setdefault(l["removed"], []).append(l["path"])
    editable = []
    current = {}
    proc = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=src, stdin=subprocess.PIPE, env=git_env())
    out = proc.stdin

    def blob(path: str, data: bytes):
        out.write(f"M 100644 inline {quote(path)}\ndata {len(data)}\n".encode() + data + b"\n")

    for k in range(total):
        msg = f"commit {k}".encode()
        when = 1735732800 + 600 * k
        out.write(f"commit refs/heads/main\nmark :{k + 1}\n".encode())
        out.write(f"author Bench <bench@corp.invalid> {when} +0000\ncommitter Bench <bench@corp.invalid> {when} +0000\n".encode())
        out.write(f"data {len(msg)}\n".encode() + msg + b"\n")
        if k:
            out.write(f"from :{k}\n".encode())
        if k < len(crates):
            for f in sorted((tree / crates[k]).rglob("*")):
                rel = str(f.relative_to(tree))
                if f.is_file() and not f.is_symlink() and rel not in planted:
                    blob(rel, f.read_bytes())
                    if f.suffix == ".rs":
                        editable.append(rel)
        else:
            for rel in rng.sample(editable, rng.randint(1, 3)):
                data = current.get(rel) or (tree / rel).read_bytes()
                current[rel] = data + f"// revision {k}\n".encode()
                blob(rel, current[rel])
        for rel in adds.get(k, []):
            blob(rel, (tree / rel).read_bytes())
        for rel in removes.get(k, []):
            out.write(f"D {quote(rel)}\n".encode())
        out.write(b"\n")
    out.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    sh(["git", "clone", "-q", "--bare", "--no-local", str(src), str(bare)], env=git_env())
    shutil.rmtree(src)
    sizes = sh(["git", "cat-file", "--batch-all-objects", "--batch-check=%(objecttype) %(objectsize)"], cwd=bare).stdout
    blob_bytes = sum(int(s) for t, s in (l.split() for l in sizes.splitlines()) if t == "blob")
    return bare, blob_bytes, total


def timed(cmd, cwd=None):
    """Wall seconds, CPU seconds (user + system, children included) and peak
    RSS (MiB) via /usr/bin/time -v."""
    start = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.monotonic() - start

    def field(name):
        m = re.search(name + r": ([0-9.]+)", p.stderr)
        return float(m.group(1)) if m else float("nan")

    cpu = field(r"User time \(seconds\)") + field(r"System time \(seconds\)")
    rss = field(r"Maximum resident set size \(kbytes\)") / 1024
    return wall, cpu, rss, p


def best_of(runs, cmd, cwd=None):
    results = [timed(cmd, cwd) for _ in range(runs)]
    return min(r[0] for r in results), min(r[1] for r in results), max(r[2] for r in results)


def paths_tresor(out: Path):
    return [f["path"] for f in json.loads(out.read_text())["findings"]]


def paths_gitleaks(out: Path):
    text = out.read_text() if out.exists() else "[]"
    return [f["File"] for f in json.loads(text or "[]")]


def paths_kingfisher(out: Path):
    if not out.exists():
        return []
    data = json.loads(out.read_text() or "{}")
    return [f["finding"]["path"] for f in data.get("findings", [])]


def score(found_paths, labels, root: Path):
    rel = set()
    for p in found_paths:
        p = str(p)
        if p.startswith(str(root)):
            p = p[len(str(root)):].lstrip("/")
        rel.add(p.lstrip("./") if p.startswith("./") else p)
    planted = {l["path"]: l for l in labels}
    hits = {p for p in rel if p in planted}
    tp = sum(1 for p in hits if planted[p]["kind"] == "secret")
    fp = sum(1 for p in hits if planted[p]["kind"] == "decoy")
    secrets = sum(1 for l in labels if l["kind"] == "secret")
    missed = sorted({planted[p]["category"] for p in planted if planted[p]["kind"] == "secret" and p not in hits})
    flagged = sorted({planted[p]["category"] for p in hits if planted[p]["kind"] == "decoy"})
    other = len(rel - set(planted))
    return {"recall": tp / secrets, "precision": tp / (tp + fp) if tp + fp else 0.0,
            "other": other, "missed": missed, "decoys_flagged": flagged}


def tresor_modes(tresor: str, out: Path, tag: str):
    return {
        "tree": (lambda root: [tresor, "scan", "-q", "--format", "json", "-o", str(out / f"{tag}-tree.json"), str(root)],
                 None, lambda: paths_tresor(out / f"{tag}-tree.json")),
        "history": (lambda repo: [tresor, "scan", "-q", "--git", "--all", "--format", "json", "-o", str(out / f"{tag}-hist.json")],
                    "repo", lambda: paths_tresor(out / f"{tag}-hist.json")),
    }


def tools(tresor: str, work: Path, baseline: str = None):
    t = work / "out"
    t.mkdir(exist_ok=True)
    baseline_row = {"tresor (baseline)": tresor_modes(baseline, t, "tresor-baseline")} if baseline else {}
    return {
        "tresor": tresor_modes(tresor, t, "tresor"),
        **baseline_row,
        "gitleaks": {
            "tree": (lambda root: ["gitleaks", "dir", str(root), "--no-banner", "--exit-code", "0", "-f", "json", "-r", str(t / "gl-tree.json")],
                     None, lambda: paths_gitleaks(t / "gl-tree.json")),
            "history": (lambda repo: ["gitleaks", "git", str(repo), "--no-banner", "--exit-code", "0", "-f", "json", "-r", str(t / "gl-hist.json")],
                        None, lambda: paths_gitleaks(t / "gl-hist.json")),
        },
        "kingfisher": {
            "tree": (lambda root: ["kingfisher", "scan", str(root), "--no-validate", "--no-update-check", "--no-dedup", "-q", "-f", "json", "-o", str(t / "kf-tree.json")],
                     None, lambda: paths_kingfisher(t / "kf-tree.json")),
            "history": (lambda repo: ["kingfisher", "scan", str(repo), "--git-history", "full", "--no-validate", "--no-update-check", "--no-dedup", "-q", "-f", "json", "-o", str(t / "kf-hist.json")],
                        None, lambda: paths_kingfisher(t / "kf-hist.json")),
        },
    }


def staged_repo(work: Path, seed: int) -> Path:
    """A small repository with one staged settings file: the pre-commit case."""
    repo = work / "staged"
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir()
    env = dict(git_env(), GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@corp.invalid",
               GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@corp.invalid")
    sh(["git", "init", "-q", "-b", "main"], cwd=repo, env=env)
    (repo / "README.md").write_text("# service\n")
    sh(["git", "add", "."], cwd=repo, env=env)
    sh(["git", "commit", "-q", "-m", "init"], cwd=repo, env=env)
    gen = plant.Gen(random.Random(seed + 2))
    body = "".join(f"OPTION_{i} = {gen.s(plant.string.digits, 4)}\n" for i in range(80))
    (repo / "settings.py").write_text(body + f"DB_PASSWORD = '{gen.password()}'\n")
    sh(["git", "add", "settings.py"], cwd=repo, env=env)
    return repo


def precommit_latency(tresor: str, repo: Path, skip, runs: int = 5):
    commands = {
        "tresor": [tresor, "scan", "-q", "--staged"],
        "gitleaks": ["gitleaks", "git", "--pre-commit", "--staged", "--no-banner", "--exit-code", "0", "."],
        "kingfisher": ["kingfisher", "scan", ".", "--staged", "--no-validate", "--no-update-check", "-q"],
    }
    return {name: best_of(runs, cmd, cwd=str(repo))[0] for name, cmd in commands.items() if name not in skip}


def print_times(results):
    """Wall and CPU seconds of the best run, cores used in it (CPU / wall),
    and tresor's speed-up over Kingfisher in both."""
    print("| tool | tree wall s | tree CPU s | tree cores | history wall s | history CPU s | history cores |")
    print("|---|---|---|---|---|---|---|")
    for name, modes in results.items():
        cells = [name]
        for mode in ("tree", "history"):
            r = modes.get(mode)
            cells += [f"{r['secs']:.2f}", f"{r['cpu']:.2f}", f"{r['cores']:.2f}"] if r else ["", "", ""]
        print("| " + " | ".join(cells) + " |")
    peer = results.get("kingfisher", {})
    for name in (n for n in results if n.startswith("tresor")):
        ratios = [f"{mode} {peer[mode]['secs'] / r['secs']:.1f}x wall, {peer[mode]['cpu'] / r['cpu']:.1f}x CPU"
                  for mode, r in results[name].items() if mode in peer]
        if ratios:
            print(f"\n{name} against kingfisher: " + "; ".join(ratios))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tresor", required=True, help="path to a release build of tresor")
    ap.add_argument("--baseline-tresor", help="another tresor build to measure beside it (before/after a change)")
    ap.add_argument("--skip", action="append", default=[], choices=["gitleaks", "kingfisher"],
                    help="leave a peer out (gitleaks takes most of the run time)")
    ap.add_argument("--work", default="/tmp/tresor-scan-bench")
    ap.add_argument("--max-mb", type=int, default=300)
    ap.add_argument("--seed", type=int, default=20261128)
    ap.add_argument("--planted", type=int, default=300, help="secrets planted (as many decoys)")
    ap.add_argument("--runs", type=int, default=2, help="best of N")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()
    # The history runs inside the repository: a relative path would not resolve there.
    args.tresor = str(Path(args.tresor).resolve())
    if args.baseline_tresor:
        args.baseline_tresor = str(Path(args.baseline_tresor).resolve())
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    tree, crates = build_tree(work, args.max_mb)
    labels = plant_files(tree, crates, args.seed, args.planted)
    tree_bytes = dir_bytes(tree)
    repo, hist_bytes, commits = build_history(work, tree, crates, labels, args.seed)
    print(f"corpus: {len(crates)} crates, {tree_bytes / 1e6:.0f} MB tree; history {commits} commits, "
          f"{hist_bytes / 1e6:.0f} MB of unique blobs; {args.planted} secrets + {args.planted} decoys planted "
          f"(seed {args.seed})", flush=True)
    (work / "labels.json").write_text(json.dumps(labels, indent=1))

    # Round-robin repetitions, so every tool sees the same mix of machine load;
    # the best wall time, the least CPU time and the largest peak RSS count.
    jobs = [("rg (trivial pattern)", "tree", lambda root: ["rg", "-c", "--no-messages", "zqxjkvtresorbench", str(root)], None, None)]
    for name, modes in tools(args.tresor, work, args.baseline_tresor).items():
        if name in args.skip:
            continue
        for mode, (cmd, cwd, parse) in modes.items():
            jobs.append((name, mode, cmd, cwd, parse))
    runs = {}
    for rep in range(args.runs):
        for name, mode, cmd, cwd, _ in jobs:
            target = tree if mode == "tree" else repo
            wall, cpu, rss, proc = timed(cmd(target), cwd=str(repo) if cwd == "repo" else None)
            runs.setdefault((name, mode), []).append((wall, cpu, rss))
            print(f"  run {rep + 1}: {name} {mode}: {wall:.2f}s wall, {cpu:.2f}s CPU", flush=True)
    results = {}
    for name, mode, cmd, cwd, parse in jobs:
        target, size = (tree, tree_bytes) if mode == "tree" else (repo, hist_bytes)
        measured = runs[(name, mode)]
        wall, cpu, rss = min(m[0] for m in measured), min(m[1] for m in measured), max(m[2] for m in measured)
        fastest = min(measured, key=lambda m: m[0])
        r = {"mbps": size / 1e6 / wall, "mb_per_cpu_s": size / 1e6 / cpu, "rss": rss, "secs": wall, "cpu": cpu,
             "cores": fastest[1] / fastest[0]}
        if parse:
            try:
                r.update(score(parse(), labels, target))
            except (OSError, ValueError, KeyError) as e:
                print(f"{name} {mode}: cannot parse output ({e})", file=sys.stderr)
                r.update(score([], labels, target))
        results.setdefault(name, {})[mode] = r

    latency = precommit_latency(args.tresor, staged_repo(work, args.seed), args.skip)
    print()
    print("| tool | tree MB/s | tree MB per CPU-s | tree peak RSS | tree recall | tree precision | history MB/s | history MB per CPU-s | history peak RSS | history recall | history precision | unlabeled findings (tree) | pre-commit, 1 staged file |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, modes in results.items():
        t, h = modes.get("tree", {}), modes.get("history")
        cells = [name, f"{t['mbps']:.0f}", f"{t['mb_per_cpu_s']:.0f}", f"{t['rss']:.0f} MiB"]
        cells += [f"{t['recall']:.1%}", f"{t['precision']:.1%}"] if "recall" in t else ["", ""]
        cells += [f"{h['mbps']:.0f}", f"{h['mb_per_cpu_s']:.0f}", f"{h['rss']:.0f} MiB", f"{h['recall']:.1%}", f"{h['precision']:.1%}"] if h else ["", "", "", "", ""]
        cells += [str(t.get("other", ""))]
        cells += [f"{latency[name]:.3f} s" if name in latency else ""]
        print("| " + " | ".join(cells) + " |")
    print()
    print_times(results)
    print()
    for name, modes in results.items():
        for mode, r in modes.items():
            if r.get("missed") or r.get("decoys_flagged"):
                print(f"{name} {mode}: missed {r['missed']}; flagged decoys {r['decoys_flagged']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "precommit_seconds": latency}, indent=2))


if __name__ == "__main__":
    main()

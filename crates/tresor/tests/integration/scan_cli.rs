//! End-to-end tests of `tresor scan` driving the real binary. Every secret is
//! assembled at run time so this file itself scans clean.
use crate::util;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch directory removed on drop (no extra dev-dependency needed).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tresor-scan-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, content: &str) -> &Self {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A realistic-format GitHub token, different for each `seed`.
fn github_token(seed: u64) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let body: String = (0..36)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            alphabet[(state % alphabet.len() as u64) as usize] as char
        })
        .collect();
    format!("{}{body}", ["gh", "p_"].concat())
}

fn tresor(dir: &Path, args: &[&str]) -> Output {
    util::tresor()
        .current_dir(dir)
        .arg("scan")
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=Dev",
            "-c",
            "user.email=dev@corp.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn git_repo() -> Scratch {
    let repo = Scratch::new();
    assert!(
        git(repo.path(), &["init", "-q", "-b", "main"])
            .status
            .success()
    );
    repo
}

#[test]
fn clean_tree_exits_zero_and_secret_exits_one_redacted() {
    let dir = Scratch::new();
    dir.write(
        "README.md",
        "Run `export DB_PASSWORD=<strong-password>` then `make`.\n",
    );
    assert_eq!(code(&tresor(dir.path(), &[])), 0);

    let token = github_token(1);
    dir.write("deploy/.env", &format!("GITHUB_TOKEN={token}\n"));
    let out = tresor(dir.path(), &["."]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(
        text.contains("deploy/.env:1:14: github-classic-pat [critical]"),
        "{text}"
    );
    assert!(!text.contains(&token), "secret printed in full");
}

#[test]
fn platform_readme_is_clean_but_its_secret_manifest_is_not() {
    let dir = Scratch::new();
    dir.write(
        "README.md",
        "kubectl create secret generic db --from-literal=password=$(openssl rand -base64 32)\n\
         helm install app ./chart --set db.password='{{ .Values.db.password }}'\n\
         export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n\
         password: changeme\n",
    );
    dir.write(
        "k8s/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: placeholder\ndata:\n  password: cGFzc3dvcmQ=\n",
    );
    assert_eq!(
        code(&tresor(dir.path(), &[])),
        0,
        "{}",
        stdout(&tresor(dir.path(), &[]))
    );

    let real = "WnE4IXJUNXdMcDJ2OSNr"; // base64 of a random password
    dir.write(
        "k8s/secret.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: {real}\n"
        ),
    );
    let out = tresor(dir.path(), &[]);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("kubernetes-secret-data"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn gitignored_and_allowlisted_paths_are_skipped() {
    let dir = Scratch::new();
    let line = format!("token = {}\n", github_token(2));
    dir.write(".gitignore", "build/\n");
    dir.write("build/out.txt", &line);
    dir.write("fixtures/fake.txt", &line);
    dir.write(
        ".tresor-scan.toml",
        "[allowlist]\npaths = [\"fixtures/**\"]\n",
    );
    assert_eq!(code(&tresor(dir.path(), &[])), 0);
}

#[test]
fn inline_allow_comment_silences_a_line() {
    let dir = Scratch::new();
    dir.write(
        "a.py",
        &format!("TOKEN = \"{}\"  # tresor:allow\n", github_token(3)),
    );
    assert_eq!(code(&tresor(dir.path(), &[])), 0);
}

#[test]
fn json_output_to_file_and_stdin() {
    let dir = Scratch::new();
    let token = github_token(4);
    let mut child = util::tresor()
        .current_dir(dir.path())
        .args(["scan", "-", "--format", "json", "--output", "out.json"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("x {token}\n").as_bytes())
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1));
    let report = std::fs::read_to_string(dir.path().join("out.json")).unwrap();
    assert!(report.contains(r#""path": "<stdin>""#), "{report}");
    assert!(report.contains(r#""rule_id": "github-classic-pat""#));
    assert!(report.contains(r#""fingerprint": ""#));
    assert!(!report.contains(&token));
}

#[test]
fn list_rules_shows_the_built_in_set() {
    let dir = Scratch::new();
    let out = tresor(dir.path(), &["--list-rules"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    assert!(text.lines().count() >= 150);
    assert!(text.contains("kubernetes-secret-data"));
}

#[test]
fn errors_exit_two_with_advice() {
    let dir = Scratch::new();
    let out = tresor(dir.path(), &["does-not-exist"]);
    assert_eq!(code(&out), 2);
    dir.write(".tresor-scan.toml", "[allowlist\n");
    let out = tresor(dir.path(), &[]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("fix the file"));
}

#[test]
fn custom_rule_from_config() {
    let dir = Scratch::new();
    dir.write(
        ".tresor-scan.toml",
        "[[rule]]\nid = \"corp-token\"\ndescription = \"Corp token\"\nseverity = \"critical\"\n\
         keywords = [\"corp_\"]\nregex = 'corp_[a-z0-9]{24}'\n",
    );
    dir.write(
        "app.cfg",
        &format!("key = {}\n", ["corp", "_k3j5h7g9f1d3s5a7q9w1e3r5"].concat()),
    );
    let out = tresor(dir.path(), &[]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains("corp-token [critical]"));
}

#[test]
fn baseline_records_then_ignores_known_findings() {
    let dir = Scratch::new();
    dir.write("a.env", &format!("T={}\n", github_token(5)));
    let out = tresor(dir.path(), &["--baseline", "baseline.json"]);
    assert_eq!(code(&out), 0, "a new baseline records and passes");
    assert_eq!(
        code(&tresor(dir.path(), &["--baseline", "baseline.json"])),
        0
    );
    // Moving the secret to another line keeps it baselined.
    dir.write("a.env", &format!("\n\nT={}\n", github_token(5)));
    assert_eq!(
        code(&tresor(dir.path(), &["--baseline", "baseline.json"])),
        0
    );
    dir.write("b.env", &format!("T={}\n", github_token(6)));
    let out = tresor(dir.path(), &["--baseline", "baseline.json"]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains("b.env"));
}

#[test]
fn history_scan_reports_first_commit_of_a_removed_secret() {
    let repo = git_repo();
    repo.write("app.cfg", "name = app\n");
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "init"]);
    repo.write(
        "app.cfg",
        &format!("name = app\ntoken = {}\n", github_token(7)),
    );
    git(repo.path(), &["commit", "-q", "-am", "add token"]);
    let leak = String::from_utf8(git(repo.path(), &["rev-parse", "HEAD"]).stdout).unwrap();
    repo.write("app.cfg", "name = app\n");
    git(repo.path(), &["commit", "-q", "-am", "remove token"]);

    assert_eq!(code(&tresor(repo.path(), &[])), 0, "the tree is clean now");
    let out = tresor(repo.path(), &["--git", "--format", "json"]);
    assert_eq!(code(&out), 1);
    let report = stdout(&out);
    assert!(report.contains(r#""path": "app.cfg""#), "{report}");
    assert!(report.contains(r#""line": 2,"#));
    assert!(report.contains(&format!(r#""id": "{}""#, leak.trim())));
    assert!(report.contains(r#""author": "Dev <dev@corp.invalid>""#));

    let out = tresor(repo.path(), &["--git", "--since", "HEAD~1"]);
    assert_eq!(
        code(&out),
        0,
        "the leak is older than HEAD~1: {}",
        stdout(&out)
    );
    assert_eq!(code(&tresor(repo.path(), &["--git", "--all"])), 1);
    assert_eq!(
        code(&tresor(repo.path(), &["--git", "--branch", "main"])),
        1
    );
}

#[test]
fn history_scan_reports_where_a_moved_secret_was_first_added() {
    let repo = git_repo();
    let token = github_token(11);
    let date = "--date=2026-01-01T00:00:00Z";
    repo.write("old/app.cfg", &format!("token = {token}\n"));
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", date, "-m", "add"]);
    let added = String::from_utf8(git(repo.path(), &["rev-parse", "HEAD"]).stdout).unwrap();
    // A new blob with the same secret at the same path, in the same second:
    // the older commit is the first appearance.
    repo.write("old/app.cfg", &format!("# moving soon\ntoken = {token}\n"));
    git(repo.path(), &["commit", "-q", date, "-am", "edit"]);
    git(repo.path(), &["mv", "old", "new"]);
    git(repo.path(), &["commit", "-q", date, "-m", "move"]);

    let out = tresor(repo.path(), &["--git", "--format", "json"]);
    assert_eq!(code(&out), 1);
    let report = stdout(&out);
    assert_eq!(report.matches(r#""rule_id""#).count(), 1, "{report}");
    assert!(report.contains(r#""path": "old/app.cfg""#), "{report}");
    assert!(report.contains(r#""line": 1,"#), "{report}");
    assert!(report.contains(&format!(r#""id": "{}""#, added.trim())));
    assert!(
        report.contains(r#""date": "2026-01-01T00:00:00"#),
        "{report}"
    );
}

#[test]
fn history_scan_finds_the_same_in_packed_and_loose_objects() {
    let repo = git_repo();
    let mut settings = String::new();
    for i in 0..12u64 {
        settings.push_str(&format!("setting_{i} = {}\n", i * 7));
        if i % 4 == 1 {
            settings.push_str(&format!("token = {}\n", github_token(100 + i)));
        }
        repo.write("settings.cfg", &settings);
        repo.write(&format!("notes/{i}.txt"), &format!("note {i}\n").repeat(50));
        git(repo.path(), &["add", "."]);
        git(repo.path(), &["commit", "-q", "-m", &format!("step {i}")]);
    }
    let scan = || tresor(repo.path(), &["--git", "--format", "json"]);
    let loose = scan();
    assert_eq!(code(&loose), 1);
    assert_eq!(stdout(&loose).matches(r#""rule_id""#).count(), 3);

    // Every revision of settings.cfg becomes a delta in a long chain.
    let repack = git(
        repo.path(),
        &["repack", "-a", "-d", "-f", "-q", "--depth=50"],
    );
    assert!(repack.status.success());
    let packed = scan();
    assert_eq!(stdout(&packed), stdout(&loose));
    assert_eq!(packed.stderr, loose.stderr, "same files and bytes scanned");

    // A commit after the repack stays loose, beside the pack.
    repo.write("late.cfg", &format!("token = {}\n", github_token(999)));
    git(repo.path(), &["add", "late.cfg"]);
    git(repo.path(), &["commit", "-q", "-m", "late"]);
    let mixed = stdout(&scan());
    assert_eq!(mixed.matches(r#""rule_id""#).count(), 4, "{mixed}");
    assert!(mixed.contains(r#""path": "late.cfg""#));
}

#[test]
fn history_scan_outside_a_repository_is_an_error() {
    let dir = Scratch::new();
    let out = tresor(dir.path(), &["--git"]);
    assert_eq!(code(&out), 2);
}

#[test]
fn pre_commit_hook_refuses_a_secret_and_passes_a_clean_commit() {
    let repo = git_repo();
    let out = tresor(repo.path(), &["install-hook"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let again = tresor(repo.path(), &["install-hook"]);
    assert_eq!(code(&again), 2, "an existing hook is not clobbered");
    assert_eq!(code(&tresor(repo.path(), &["install-hook", "--force"])), 0);

    repo.write("README.md", "# app\n");
    git(repo.path(), &["add", "README.md"]);
    let clean = git(repo.path(), &["commit", "-q", "-m", "clean"]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );

    repo.write(
        "config.yaml",
        &format!("github_token: {}\n", github_token(8)),
    );
    git(repo.path(), &["add", "config.yaml"]);
    let refused = git(repo.path(), &["commit", "-q", "-m", "leak"]);
    assert!(
        !refused.status.success(),
        "the commit with a secret must be refused"
    );
    let log = git(repo.path(), &["log", "--oneline"]);
    assert_eq!(String::from_utf8_lossy(&log.stdout).lines().count(), 1);
}

#[test]
fn staged_scan_sees_only_the_index() {
    let repo = git_repo();
    repo.write("staged.txt", "nothing here\n");
    repo.write("unstaged.txt", &format!("t = {}\n", github_token(9)));
    git(repo.path(), &["add", "staged.txt"]);
    assert_eq!(code(&tresor(repo.path(), &["--staged"])), 0);
    git(repo.path(), &["add", "unstaged.txt"]);
    let out = tresor(repo.path(), &["--staged"]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains("unstaged.txt:1:5"));
}

//! `tresor scan install-hook`: a git pre-commit hook that scans the index.
use crate::error::ScanError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Installs `pre-commit` in the repository at `repo`, running `exe`.
pub fn install(repo: &Path, exe: &Path, force: bool) -> Result<PathBuf, ScanError> {
    let output = Command::new("git")
        .current_dir(repo)
        .args(["rev-parse", "--git-path", "hooks"])
        .output()
        .map_err(|e| ScanError::Git {
            command: "rev-parse".into(),
            message: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(ScanError::Git {
            command: "rev-parse".into(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let dir = repo.join(String::from_utf8_lossy(&output.stdout).trim());
    let hook = dir.join("pre-commit");
    if hook.exists() && !force {
        return Err(ScanError::HookExists(hook));
    }
    let write_err = |source| ScanError::Write {
        path: hook.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(write_err)?;
    std::fs::write(&hook, script(exe)).map_err(write_err)?;
    make_executable(&hook).map_err(write_err)?;
    Ok(hook)
}

fn script(exe: &Path) -> String {
    let exe = exe.display().to_string().replace('\'', r"'\''");
    format!(
        "#!/bin/sh\n\
         # Installed by `tresor scan install-hook`: refuses commits that add credentials.\n\
         # Silence a false alarm with a `tresor:allow` comment or a baseline (docs/scan.md).\n\
         if [ -z \"$TRESOR\" ]; then TRESOR='{exe}'; fi\n\
         command -v \"$TRESOR\" >/dev/null 2>&1 || TRESOR=tresor\n\
         exec \"$TRESOR\" scan --staged\n"
    )
}

#[cfg(unix)]
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

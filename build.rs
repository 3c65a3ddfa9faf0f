//! Sets `BNSCOPE_COMMIT` for `bnscope --version`: the short git commit of a clone, else the commit cargo recorded
//! when it packaged the crate (`.cargo_vcs_info.json`), else `unknown`.
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&dir);
    // Only a repository whose top is this crate: a crate unpacked inside some other repository is not it.
    let ours = git(dir, &["rev-parse", "--show-toplevel"])
        .and_then(|top| Some(Path::new(&top).canonicalize().ok()? == dir.canonicalize().ok()?))
        .unwrap_or(false);
    let commit = if ours {
        // Rebuilt when HEAD moves: a new commit on the branch, or another branch checked out.
        for p in ["HEAD", "packed-refs"] {
            if let Some(path) = git(dir, &["rev-parse", "--git-path", p]) {
                println!("cargo:rerun-if-changed={}", dir.join(path).display());
            }
        }
        if let Some(r) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
            if let Some(path) = git(dir, &["rev-parse", "--git-path", &r]) {
                println!("cargo:rerun-if-changed={}", dir.join(path).display());
            }
        }
        git(dir, &["rev-parse", "--short", "HEAD"])
    } else {
        packaged_commit(dir)
    };
    println!(
        "cargo:rustc-env=BNSCOPE_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}

/// `"sha1": "…"` in the `.cargo_vcs_info.json` that `cargo package` writes, shortened as git does.
fn packaged_commit(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let rest = &text[text.find("\"sha1\"")? + "\"sha1\"".len()..];
    let start = rest.find('"')? + 1;
    let sha: String = rest[start..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    (sha.len() >= 7).then(|| sha[..7].to_string())
}

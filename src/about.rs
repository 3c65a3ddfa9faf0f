//! What `bnscope --version` says about this build and this machine, and the generated shell completions and man
//! page (`bnscope completions SHELL`, `bnscope man`).
use std::io::Write;

/// The git commit the binary was built from (`build.rs`: `git rev-parse --short HEAD` in a clone, the packaged
/// commit in a crate from crates.io), or `unknown`.
pub const COMMIT: &str = env!("BNSCOPE_COMMIT");

/// The cargo features that change what the binary does.
pub fn features() -> String {
    let on: Vec<&str> = [("train", cfg!(feature = "train")), ("cuda", cfg!(feature = "cuda"))]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
    if on.is_empty() {
        "none (the viewer only: replay, watch, and steering a watched run)".into()
    } else {
        on.join(", ")
    }
}

/// The instruction sets the CPU kernels use on this CPU (gemm dispatches on avx512f, else avx2 + fma; Adam's
/// update has an avx512f path), detected at run time.
pub fn cpu_kernels() -> String {
    if !cfg!(feature = "train") {
        return "none (no trainer in this build)".into();
    }
    #[cfg(target_arch = "x86_64")]
    {
        let found: Vec<&str> = [
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        if found.is_empty() {
            "generic (this CPU has none of avx512f, avx2, fma)".into()
        } else {
            found.join(", ")
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "generic".into()
    }
}

/// `--version`'s text after "bnscope ": the version, then one line each for the commit, the features and the
/// CPU kernels.
pub fn long_version() -> String {
    format!(
        "{}\ncommit: {COMMIT}\nfeatures: {}\ncpu kernels: {}",
        env!("CARGO_PKG_VERSION"),
        features(),
        cpu_kernels()
    )
}

/// `bnscope completions SHELL`: the completion script for `cmd` (main passes `cli::command()`, so that this
/// module, which `cli` asks for the long version, does not import `cli` back) on stdout.
pub fn completions(shell: clap_complete::Shell, mut cmd: clap::Command) -> std::io::Result<()> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "bnscope", &mut buf);
    print(&buf)
}

/// `bnscope man`: the man page (roff, section 1) of `cmd` (`cli::command()`) on stdout.
pub fn man(cmd: clap::Command) -> std::io::Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut buf)?;
    print(&buf)
}

/// Writes to stdout; a reader that went away (`bnscope man | head`) is not an error.
fn print(buf: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(buf).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

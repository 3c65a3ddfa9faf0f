//! A run's outputs (`--log`, `--checkpoint`, `--save-weights`) checked at start-up against its inputs and against
//! each other, before anything is written: nothing the user has is ever written over.
//!
//! * Every output against every input: `--resume`, `--weights`, the `--data` and `--val` images, and the bnscope
//!   binary itself; and every output against every other output. Compared as files ([`files::same_file`]:
//!   through symlinks, hard links by inode). One exception: `--checkpoint` may be the `--resume` file, which a
//!   resumed run continues (replacing it atomically with the newer checkpoint is what the user asked for).
//! * Each clash is one line naming both flags and both files (exit 2).
//! * Then each output is prepared as its own kind requires: the checkpoint and the weights file must be writable
//!   where they are (a test file is created beside them and removed again) and are locked against a second
//!   bnscope writing them ([`files::lock_path`]); the log is opened last, by `main`.
use std::path::Path;

use anyhow::Result;

use crate::cli::RunArgs;
use crate::data::Dataset;
use crate::error::usage;
use crate::files;

fn shown(p: &Path) -> String {
    crate::terminal::printable(&p.display().to_string()).into_owned()
}

/// The locks a run holds on its outputs until it ends (dropping them releases them).
#[must_use = "the locks last only as long as they are held"]
pub struct Held {
    _locks: Vec<files::PathLock>,
}

/// What an output would destroy if it were written over an input, for the message.
fn what_is_lost(output: &str, input: &str) -> &'static str {
    match (output, input) {
        ("--log", "--resume") => "the log would overwrite the checkpoint",
        (_, "--resume") => "it would replace the checkpoint being resumed",
        (_, "--weights") => "it would replace the imported weights",
        _ => "it would be written over",
    }
}

/// Checks the outputs against the inputs and each other (see the module's doc), then prepares the checkpoint and
/// the weights file. `sets` are the loaded data sets with the flag that named them (`--data`, `--val`).
pub fn prepare(a: &RunArgs, sets: &[(&str, &Dataset)]) -> Result<Held> {
    check(a, sets)?;
    let mut locks = Vec::new();
    if let Some(c) = &a.checkpoint {
        locks.extend(crate::checkpoint::prepare(c)?);
    }
    if let Some(w) = &a.save_weights {
        locks.extend(crate::weights::prepare_save(w, a.weights.as_deref())?);
    }
    Ok(Held { _locks: locks })
}

/// The clash checks of [`prepare`] alone: nothing is created or locked.
pub fn check(a: &RunArgs, sets: &[(&str, &Dataset)]) -> Result<()> {
    let outputs: Vec<(&str, &Path)> = [
        ("--log", a.log.as_deref()),
        ("--checkpoint", a.checkpoint.as_deref()),
        ("--save-weights", a.save_weights.as_deref()),
    ]
    .into_iter()
    .filter_map(|(f, p)| Some((f, p?)))
    .collect();
    let inputs: Vec<(&str, &Path)> = [("--resume", a.resume.as_deref()), ("--weights", a.weights.as_deref())]
        .into_iter()
        .filter_map(|(f, p)| Some((f, p?)))
        .collect();
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| files::file_id(&m));
    for (i, &(flag, out)) in outputs.iter().enumerate() {
        let o = shown(out);
        for &(other, later) in &outputs[i + 1..] {
            if files::same_file(out, later) {
                return Err(usage(format!(
                    "{flag} {o}: the same file as {other} {}; give them different names",
                    shown(later)
                )));
            }
        }
        for &(input, path) in &inputs {
            if (flag, input) == ("--checkpoint", "--resume") {
                // The resumed run carries on writing its own checkpoint.
                continue;
            }
            if files::same_file(out, path) {
                return Err(usage(format!(
                    "{flag} {o}: the same file as {input} {}; {}; give another name",
                    shown(path),
                    what_is_lost(flag, input)
                )));
            }
        }
        let Ok(meta) = std::fs::metadata(out) else { continue };
        let id = files::file_id(&meta);
        if let Some((set_flag, _)) = sets.iter().find(|(_, d)| d.file_ids.contains(&id)) {
            let noun = match flag {
                "--log" => "the log",
                "--checkpoint" => "the checkpoint",
                _ => "the weights",
            };
            return Err(usage(format!(
                "{flag} {o}: is one of the {set_flag} images; write {noun} elsewhere"
            )));
        }
        if exe == Some(id) {
            return Err(usage(format!(
                "{flag} {o}: is the bnscope binary itself; give another name"
            )));
        }
    }
    Ok(())
}

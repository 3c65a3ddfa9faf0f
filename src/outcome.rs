//! How a run ended, the same way for the TUI and headless: the exit status of the README's table and the
//! `bnscope: error: …` lines still to print (the TUI can print only once it has restored the terminal).
use crate::protocol::EndReason;

/// The end of a run as a front end saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The trainer's own reason (its `Finished`), or the front end's when the trainer never said.
    pub reason: EndReason,
    /// The first SIGINT/SIGTERM/SIGHUP, when one ended the run.
    pub signal: Option<i32>,
    /// Something went wrong that the reason alone does not say (a checkpoint that could not be written, a quit
    /// that did not wait for it).
    pub failed: bool,
    /// Lines for stderr, without the `bnscope: error: ` prefix, not yet printed.
    pub messages: Vec<String>,
    /// Lines for stderr that are not errors (`weights written to …`), printed with a `bnscope: ` prefix after the
    /// terminal is restored.
    pub notes: Vec<String>,
    /// `L` in the TUI chose a lesson: `main` starts bnscope again with `--scenario` this name.
    pub relaunch: Option<String>,
}

impl Outcome {
    pub fn new(reason: EndReason) -> Self {
        Outcome {
            reason,
            signal: None,
            failed: false,
            messages: Vec::new(),
            notes: Vec::new(),
            relaunch: None,
        }
    }

    /// 128 + n after signal n; 1 for a failed run (error, divergence, a checkpoint not written); 0 otherwise.
    pub fn exit_status(&self) -> i32 {
        if let Some(sig) = self.signal {
            return crate::signals::exit_status(sig);
        }
        if self.failed || matches!(self.reason, EndReason::Error | EndReason::Diverged) {
            1
        } else {
            0
        }
    }
}

/// The one wording of a divergence, for stderr, the TUI's status and diagnosis lines alike.
pub fn diverged_message(epoch: usize, loss: f32, what: &str) -> String {
    format!(
        "training diverged at epoch {epoch}: {what} (loss {}); try a smaller --lr",
        loss_text(loss)
    )
}

/// `NaN`, `Inf`, `1.234` or `5.0e9`.
fn loss_text(x: f32) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "Inf" } else { "-Inf" }.into()
    } else if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e4) {
        format!("{x:.1e}")
    } else {
        format!("{x:.4}")
    }
}

/// What a quit that did not wait for the trainer leaves undone, if anything worth saying: `None` without a
/// checkpoint (the log has every epoch; only its `end` record is missing, which readers take as "stopped").
pub fn abandoned_message(checkpoint: Option<&str>) -> Option<String> {
    checkpoint.map(|c| format!("quit without waiting for the trainer: the checkpoint {c} was not written"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses() {
        let mut o = Outcome::new(EndReason::Done);
        assert_eq!(o.exit_status(), 0);
        o.reason = EndReason::Quit;
        assert_eq!(o.exit_status(), 0);
        o.reason = EndReason::Diverged;
        assert_eq!(o.exit_status(), 1);
        o.reason = EndReason::Error;
        assert_eq!(o.exit_status(), 1);
        o.reason = EndReason::Quit;
        o.failed = true;
        assert_eq!(o.exit_status(), 1);
        o.signal = Some(15);
        assert_eq!(o.exit_status(), 143);
    }

    #[test]
    fn divergence_wording() {
        assert_eq!(
            diverged_message(7, 5e9, "the training loss is over 1000× chance (ln 3)"),
            "training diverged at epoch 7: the training loss is over 1000× chance (ln 3) (loss 5.0e9); try a smaller --lr"
        );
        assert_eq!(
            diverged_message(3, f32::NAN, "the training loss is not finite"),
            "training diverged at epoch 3: the training loss is not finite (loss NaN); try a smaller --lr"
        );
    }
}

//! The running statistics' age as a log tells it (`t`, the momentum, `init_weight` where the writer has it): one
//! rule for every reader of a log (the TUI's timeline, `compare`), so that "travelled 1 − ∏m" agrees between them.
use super::schema::{Epoch, Run};
use crate::protocol::StatsAge;

/// Updates since the last reset: the log's `t`; for Keras (which updates the moving statistics once per training
/// step and writes no `t`) the step count.
pub fn updates(e: &Epoch, run: &Run) -> Option<u64> {
    e.t.or(if run.source == "keras" { e.step } else { None })
}

/// The running statistics' age after epoch `e`, from the one before: the log's `init_weight` where it has one,
/// else `w·mᵗ⁻ᵗ'` over this epoch's updates at its momentum (exact while the momentum changes only between
/// epochs), starting again when `t` falls (a reset). `None` without `t` or a momentum.
pub fn next_age(prev: Option<StatsAge>, e: &Epoch, run: &Run) -> Option<StatsAge> {
    let t = updates(e, run)?;
    let cumulative = e.cumulative || run.cumulative;
    let m = e.momentum.or(run.momentum);
    let prev = prev.filter(|p| p.t <= t).unwrap_or(StatsAge::START);
    let constant = match (prev.t, m) {
        (_, None) => None,
        (0, Some(m)) if prev.init_weight == 1.0 => Some(m),
        (_, Some(m)) if prev.constant_momentum == Some(m) => Some(m),
        _ => None,
    };
    let init_weight = match (e.init_weight, m) {
        (Some(w), _) => w,
        _ if cumulative && t > 0 => 0.0,
        (None, Some(m)) => prev.init_weight * m.powi((t - prev.t).min(i32::MAX as u64) as i32),
        (None, None) => return None,
    };
    Some(StatsAge {
        t,
        init_weight,
        constant_momentum: constant.filter(|_| !cumulative && t > 0),
    })
}

/// The age an `event` record leaves behind in a log without `init_weight` (the Python writers say a reset or a
/// recalibration only this way): a recalibration leaves no weight on the (0, 1) start (travelled 100 %), a reset
/// starts the age again; other events change nothing (`None`).
pub fn age_after_event(what: &str) -> Option<StatsAge> {
    match what {
        "recalibrate" => Some(StatsAge {
            t: 0,
            init_weight: 0.0,
            constant_momentum: None,
        }),
        "reset_stats" => Some(StatsAge::START),
        _ => None,
    }
}

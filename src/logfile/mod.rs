//! bnscope's JSONL log read back (`docs/LOG_FORMAT.md`, schema 1): bnscope's own logs and those of the Python hook
//! and callback (`python/`).
//!
//! * `schema`: the records and the parse of one line (strings made printable here, at the edge);
//! * `read`: [`Reader`] (bytes in pieces, linear time, lines up to [`read::MAX_LINE`]), whole-file streaming;
//! * `follow`: [`Follower`], a growing or rotating file in bounded pieces;
//! * `ranks`: the spread of several ranks' running means;
//! * `print`: the headless replay and watch.
//!
//! A reader never invents numbers: a field a writer left out is `None` here and "not in this log" on screen, and a
//! `null` (a number that was not finite) is NaN.
pub mod age;
pub mod follow;
pub mod print;
pub mod ranks;
pub mod read;
pub mod schema;

pub use age::{age_after_event, next_age, updates};
pub use follow::{skipped_words, Followed, Follower, WATCH_POLL};
pub use print::{epoch_line, run_headless, watch_headless};
pub use ranks::{add_means, spread_at, RankMeans, RANK_ADVICE, RANK_SPREAD_WARN};
pub use read::{read_file, reread, Reader};
pub use schema::{BnLayer, Control, Epoch, Event, Metric, Record, Run, Span, SCHEMA};

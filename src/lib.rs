//! bnscope: watch BatchNorm's train/eval gap while a small ResNet trains.
//!
//! Dependencies point one way (see `docs/ARCHITECTURE.md` for the picture):
//! front ends (`tui`, `headless`) → `protocol` ← `trainer` → `optim` → `model` → `kernels`, with `runtime`
//! (threads, allocator) and `terminal` (restoring it) beside them.
//!
//! The trainer's modules need the `train` feature (on by default); without it the crate is the log viewer only
//! (`replay`, `watch` and steering through `control`), with no candle in the build.
pub mod about;
#[cfg(feature = "train")]
pub mod alloc;
#[cfg(feature = "train")]
pub mod bench;
#[cfg(feature = "train")]
pub mod checkpoint;
pub mod cli;
pub mod compare;
pub mod control;
#[cfg(feature = "train")]
pub mod data;
#[cfg(feature = "train")]
pub mod device;
pub mod error;
pub mod export;
pub mod files;
pub mod format;
pub mod framework;
pub mod headless;
pub mod inspect;
#[cfg(feature = "train")]
pub mod kernels;
pub mod lesson;
#[cfg(feature = "train")]
pub mod loading;
pub mod log;
pub mod logfile;
#[cfg(feature = "train")]
pub mod model;
#[cfg(feature = "train")]
pub mod optim;
pub mod outcome;
#[cfg(feature = "train")]
pub mod outputs;
pub mod prefs;
#[cfg(feature = "train")]
pub mod profile;
pub mod protocol;
pub mod runtime;
#[cfg(feature = "train")]
pub mod settings;
#[cfg(feature = "train")]
pub mod shapes;
pub mod signals;
pub mod terminal;
#[cfg(feature = "train")]
pub mod trainer;
pub mod tui;
#[cfg(feature = "train")]
pub mod weights;

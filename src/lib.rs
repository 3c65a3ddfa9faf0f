//! bnscope: watch BatchNorm's train/eval gap while a small ResNet trains.
//!
//! Dependencies point one way (see `docs/ARCHITECTURE.md` for the picture):
//! front ends (`tui`, `headless`) → `protocol` ← `trainer` → `optim` → `model` → `kernels`, with `runtime`
//! (threads, allocator) and `terminal` (restoring it) beside them.
pub mod alloc;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod control;
pub mod data;
pub mod device;
pub mod error;
pub mod files;
pub mod framework;
pub mod headless;
pub mod inspect;
pub mod kernels;
pub mod lesson;
pub mod loading;
pub mod log;
pub mod logfile;
pub mod model;
pub mod optim;
pub mod outcome;
pub mod outputs;
pub mod profile;
pub mod protocol;
pub mod runtime;
pub mod settings;
pub mod shapes;
pub mod signals;
pub mod terminal;
pub mod trainer;
pub mod tui;
pub mod weights;

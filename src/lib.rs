//! bnscope: watch BatchNorm's train/eval gap while a small ResNet trains.
//!
//! See `docs/ARCHITECTURE.md` for the threads, the channel protocol and the module map.
pub mod bench;
pub mod bn;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod device;
pub mod error;
pub mod headless;
pub mod kernels;
pub mod log;
pub mod models;
pub mod optim;
pub mod pool;
pub mod profile;
pub mod protocol;
pub mod signals;
pub mod trainer;
pub mod tui;

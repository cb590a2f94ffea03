//! The `callvault` program: command line, configuration and the wiring of
//! capture -> mixer -> spool -> shipper. The binary (`main.rs`) only parses arguments and
//! calls into here, so benchmarks and tests drive the same pipeline.

#![allow(clippy::disallowed_methods)] // the wiring: run ids, heartbeats, live idle ticks (clippy.toml)

pub mod api;
pub mod archive;
pub mod audit;
pub mod batch;
pub mod cli;
pub mod config;
pub mod config_command;
pub mod hep;
pub mod http;
pub mod index;
pub mod link;
pub mod logging;
pub mod metrics;
pub mod out;
pub mod pipeline;
pub mod privileges;
pub mod readahead;
pub mod replay;
pub mod retention;
pub mod run;
pub mod serve;
pub mod ship;
pub mod stop;
pub mod summary;
pub mod systemd;
pub mod targets;

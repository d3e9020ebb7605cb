//! The end-to-end suite, one binary: `cargo test --test e2e [FILTER]`
//! (e.g. `cargo test --test e2e stack::`). Each module is one area.

mod activity;
mod admin;
mod cli;
mod cost;
mod dotfiles;
mod e2e;
mod examples;
mod faults;
mod github;
mod hosts;
mod idle;
mod idle_month;
mod image;
mod intercept;
mod interrupts;
mod mysql;
mod network;
mod new_user;
mod nix;
mod preview;
mod reap;
mod secrets;
mod setup;
mod sqs;
mod stack;
mod structure;
mod sync;
mod team;
mod team_env;
mod terraform;
mod upgrade;
mod webhooks;
mod workflows;

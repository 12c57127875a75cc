//! pushrelay: a push notification delivery daemon.
//!
//! Producers write notifications into a PostgreSQL outbox in their own
//! transactions; pushrelay fans each out to the recipient's devices
//! ([`outbox`]), sends them through a provider per platform ([`dispatch`],
//! [`providers`]), retries by the rules in [`retry`], and records a receipt
//! for every attempt. [`daemon::Daemon`] runs it all; the CLI in [`cli`] and
//! the tests drive the same library.

pub mod bench;
pub mod breaker;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
pub mod demo;
pub mod devices;
pub mod dispatch;
pub mod maintenance;
pub mod mock;
pub mod mock_setup;
pub mod outbox;
pub mod providers;
pub mod retry;
pub mod status;
pub mod telemetry;
pub mod templates;

//! pushrelay: a push notification delivery daemon.
//!
//! Producers write notifications into a PostgreSQL outbox in their own
//! transactions; pushrelay fans each out to the recipient's devices, sends
//! them through a provider per platform, retries by the rules in
//! [`worker::retry`], and records a receipt for every attempt.
//!
//! Dependencies point one way: [`model`] and [`config`] at the bottom;
//! [`store`] (all SQL), [`templates`] and [`providers`] above them;
//! [`worker`] above those; [`app`] wires one application that the [`cli`]
//! and the tests start; [`api`] (the HTTP API) and [`cli`] are at the top.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod console;
pub mod content;
#[cfg(feature = "mock")]
pub mod mock;
#[cfg(feature = "mock")]
pub mod mock_setup;
pub mod model;
pub mod providers;
pub mod store;
pub mod telemetry;
pub mod templates;
pub mod worker;

//! Contract tests for the store traits: one suite per trait, run against every backend, so the
//! backends cannot drift apart. Each test gets a fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod contract;
mod limiter;
mod postgres;
mod redis;
mod sqlite;

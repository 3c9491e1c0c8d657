//! Integration tests for the `tessera` binary: one test binary, a real server per test.
//!
//! Each test starts its own `tessera serve` on port 0 with a fresh data dir, sets it up with
//! the admin CLI and talks OAuth over HTTP, so tests run in parallel under nextest.

mod harness;
mod pg;

mod admin;
mod audience;
mod audit;
mod browser;
mod chains;
mod cli;
mod connections;
mod deployment;
mod discovery;
mod errors;
mod fronts_policy;
mod grants;
mod introspection;
mod keys;
mod limits;
mod metrics;
mod mfa;
mod nodes;
mod openapi;
mod outage;
mod persistence;
mod refresh;
mod scale;
mod selftest;

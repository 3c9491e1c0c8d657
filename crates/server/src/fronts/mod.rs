//! The API fronts: each speaks one existing token API over the core.

pub mod tapis;

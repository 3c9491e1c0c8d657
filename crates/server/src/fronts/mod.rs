//! The API fronts: each speaks one existing token API over the core.

pub mod docspace;
pub mod ica;
pub mod sftpgo;
pub mod tapis;

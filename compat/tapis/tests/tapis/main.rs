//! The published `tapis-authenticator` 0.4.4 client against a real `tessera serve`
//! (CONTRACTS.md section 4). Every Tapis operation goes through the crate; raw HTTP is used
//! only for what the crate cannot express (Host-selected tenants, Basic client auth, status
//! codes of successful answers, JWKS and standard introspection).

mod admin;
mod clients;
mod common;
mod device;
mod meta;
mod profiles;
mod refresh;
mod revoke;
mod tenant;
mod tokens;

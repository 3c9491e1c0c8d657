//! Tessera core: the domain (tenants, principals, grants, tokens, keys) and the engine
//! (`Authority`) that decides. No I/O here: storage is the `Store` port, time and
//! randomness are injected.

pub mod authority;
pub mod clock;
pub mod device;
pub mod error;
pub mod grant;
pub mod keys;
pub mod name;
pub mod page;
pub mod principal;
pub mod revocation;
pub mod scan;
pub mod secret;
pub mod store;
pub mod tenant;
pub mod throttle;
pub mod token;
pub mod totp;

pub use authority::{Authority, DEFAULT_TENANT, Settings};
pub use error::{Error, ErrorKind, Result};
pub use name::{ClientId, RedirectUri, TenantName, Username};

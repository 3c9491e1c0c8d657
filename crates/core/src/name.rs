//! Names parsed once, where they enter: a tenant's name, a username, a client id, a client's
//! callback URL. A value of these types has passed its rules, so the engine and the store
//! never see an invalid one.

use crate::error::{Error, Result};
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $valid:expr, $error:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The name if it keeps the rules, else `invalid_request` saying them.
            pub fn parse(s: &str) -> Result<Self> {
                let valid: fn(&str) -> bool = $valid;
                if valid(s) {
                    Ok($name(s.to_owned()))
                } else {
                    let error: fn(&str) -> String = $error;
                    Err(Error::invalid_request(error(s)))
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self> {
                $name::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

name_type!(
    /// A tenant's name: 1-63 of `a-z 0-9 -`, not starting or ending with `-`.
    TenantName,
    |s| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    },
    |s| format!("invalid tenant name `{s}`: use 1-63 lowercase letters, digits and inner dashes")
);

name_type!(
    /// A username: 1-128 letters, digits and `. _ - @ +`.
    Username,
    |s| !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_alphanumeric() || "._-@+".contains(c)),
    |s| format!("invalid username `{s}`: use 1-128 letters, digits and . _ - @ +")
);

name_type!(
    /// A client id: 1-128 ASCII letters, digits and `- _ .` (generated ones are base64url).
    ClientId,
    |s| !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
    |_| "client_id must be 1-128 of letters, digits, - _ .".to_owned()
);

name_type!(
    /// A client's callback (redirect) URL: absolute `http(s)`, at most 2000 characters.
    RedirectUri,
    |s| (s.starts_with("https://") || s.starts_with("http://")) && s.len() <= 2000,
    |_| "callback_url must be an http(s) URL".to_owned()
);

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn tenant_names() -> TestResult {
        for ok in ["default", "a", "acme-1"] {
            assert_eq!(TenantName::parse(ok)?, ok);
        }
        for bad in ["", "-a", "a-", "A", "a/b", "a.b", &"x".repeat(64)] {
            let e = TenantName::parse(bad).unwrap_err();
            assert!(e.description.starts_with("invalid tenant name"), "{bad}: {}", e.description);
        }
        Ok(())
    }

    #[test]
    fn usernames() -> TestResult {
        for ok in ["alice", "a.b_c-d@e+f", "ünï", &"x".repeat(128)] {
            assert_eq!(Username::parse(ok)?.as_str(), ok);
        }
        for bad in ["", "a b", "a/b", "a:b", &"x".repeat(129)] {
            assert!(Username::parse(bad).unwrap_err().description.starts_with("invalid username"), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn client_ids() -> TestResult {
        for ok in ["app", "A-b_c.9", &"x".repeat(128)] {
            assert_eq!(ClientId::parse(ok)?.to_string(), ok);
        }
        for bad in ["", "a b", "ü", "a/b", &"x".repeat(129)] {
            assert_eq!(
                ClientId::parse(bad).unwrap_err().description,
                "client_id must be 1-128 of letters, digits, - _ ."
            );
        }
        Ok(())
    }

    #[test]
    fn redirect_uris() -> TestResult {
        let long = format!("https://a.example/{}", "x".repeat(2000 - 18));
        for ok in ["https://app.example/cb", "http://localhost:8080/cb?x=1", long.as_str()] {
            assert_eq!(RedirectUri::parse(ok)?, ok);
        }
        for bad in ["", "app.example/cb", "ftp://a.example", "javascript:alert(1)", &format!("{long}x")] {
            assert_eq!(RedirectUri::parse(bad).unwrap_err().description, "callback_url must be an http(s) URL");
        }
        Ok(())
    }

    #[test]
    fn serde_is_the_plain_string_and_checks_it() -> TestResult {
        let t: TenantName = serde_json::from_str("\"acme\"")?;
        assert_eq!(serde_json::to_string(&t)?, "\"acme\"");
        assert!(serde_json::from_str::<TenantName>("\"Acme\"").is_err());
        assert!(serde_json::from_str::<Username>("\"a b\"").is_err());
        Ok(())
    }
}

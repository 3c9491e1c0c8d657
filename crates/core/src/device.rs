//! RFC 8628 user codes: short, typeable, unambiguous.

use crate::clock::Rng;

/// Consonants only (RFC 8628 section 6.1): no vowels, so no words; no look-alikes.
const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
pub const USER_CODE_LEN: usize = 8;

/// A fresh user code, normalised (no separator). 20^8 ~ 2^34.6 codes.
pub fn generate_user_code(rng: &dyn Rng) -> String {
    let mut out = String::with_capacity(USER_CODE_LEN);
    while out.len() < USER_CODE_LEN {
        let mut b = [0u8; 16];
        rng.fill(&mut b);
        // Rejection sampling keeps the distribution uniform: 240 = 12 * 20.
        for x in b {
            if x < 240
                && out.len() < USER_CODE_LEN
                && let Some(&c) = ALPHABET.get(usize::from(x % 20))
            {
                out.push(char::from(c));
            }
        }
    }
    out
}

/// What a person typed, normalised: case folded, separators and spaces dropped.
/// `None` if it cannot be a user code.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let s: String = typed.chars().filter(|c| !matches!(c, '-' | ' ' | '\t')).map(|c| c.to_ascii_uppercase()).collect();
    (s.len() == USER_CODE_LEN && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

/// As shown: `XXXX-XXXX`.
pub fn display_user_code(code: &str) -> String {
    if code.len() == USER_CODE_LEN { format!("{}-{}", &code[..4], &code[4..]) } else { code.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemRng;

    #[test]
    fn codes_roundtrip_through_what_people_type() {
        for _ in 0..100 {
            let c = generate_user_code(&SystemRng);
            assert_eq!(c.len(), 8);
            let shown = display_user_code(&c);
            assert_eq!(normalize_user_code(&shown).as_deref(), Some(c.as_str()));
            assert_eq!(normalize_user_code(&shown.to_lowercase()).as_deref(), Some(c.as_str()));
        }
        assert_eq!(normalize_user_code("ABCD-EFGH"), None, "vowels are not in the alphabet");
        assert_eq!(normalize_user_code("BCD"), None);
    }
}

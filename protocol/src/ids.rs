//! Newtypes that validate at the boundary, so the rest of the code can trust what it holds.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an identifier or a name was refused; the message is safe to show to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// A player id: 1–64 characters of `[A-Za-z0-9_.:-]`, as DESIGN.md fixes for the `sub` claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlayerId(String);

impl PlayerId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: impl Into<String>) -> Result<Self, InvalidValue> {
        let s = s.into();
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(InvalidValue("a player id has 1 to 64 characters"));
        }
        if !s.chars().all(is_id_char) {
            return Err(InvalidValue(
                "a player id uses only letters, digits and _ . : -",
            ));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PlayerId {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<PlayerId> for String {
    fn from(id: PlayerId) -> Self {
        id.0
    }
}

impl fmt::Display for PlayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PlayerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An action name (`act` claim, catalog key): same alphabet and length as a player id, so it
/// can travel in logs and metrics labels without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActionName(String);

impl ActionName {
    pub fn parse(s: impl Into<String>) -> Result<Self, InvalidValue> {
        let s = s.into();
        if s.is_empty() || s.len() > 64 || !s.chars().all(is_id_char) {
            return Err(InvalidValue(
                "an action name has 1 to 64 letters, digits or _ . : -",
            ));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ActionName {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<ActionName> for String {
    fn from(a: ActionName) -> Self {
        a.0
    }
}

/// Compares, hashes and orders as its string does, so a map keyed by action names can be
/// looked up with the `&str` a request carries.
impl std::borrow::Borrow<str> for ActionName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ActionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A board id: `^[a-z0-9][a-z0-9_-]{0,31}$` (DESIGN.md, "Boards and periods"). Lower case
/// only, so a board cannot be named twice in two cases, and safe in Redis keys, hub names and
/// URLs without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BoardId(String);

impl BoardId {
    pub const MAX_LEN: usize = 32;
    /// The all-time board every route without a board name is an alias of.
    pub const GLOBAL: &'static str = "global";

    pub fn parse(s: impl Into<String>) -> Result<Self, InvalidValue> {
        let s = s.into();
        let mut chars = s.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !first_ok || !rest_ok || s.len() > Self::MAX_LEN {
            return Err(InvalidValue(
                "a board id has 1 to 32 characters of a-z, 0-9, _ and -, starting with a letter or digit",
            ));
        }
        Ok(Self(s))
    }

    pub fn global() -> Self {
        Self(Self::GLOBAL.to_owned())
    }

    pub fn is_global(&self) -> bool {
        self.0 == Self::GLOBAL
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BoardId {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<BoardId> for String {
    fn from(b: BoardId) -> Self {
        b.0
    }
}

impl fmt::Display for BoardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Maps keyed by board id can be read with a `&str` (the derived `Hash`/`Eq` are the string's).
impl std::borrow::Borrow<str> for BoardId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for BoardId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A display name: 1–32 characters after trimming, no control or format characters (which
/// could reorder or hide text on the board). Any other Unicode is allowed: pages render names
/// as text, never as HTML, so `<` and `&` are harmless.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 32;

    pub fn parse(s: impl AsRef<str>) -> Result<Self, InvalidValue> {
        let s = s.as_ref().trim();
        let count = s.chars().count();
        if count == 0 || count > Self::MAX_CHARS {
            return Err(InvalidValue("a name has 1 to 32 characters"));
        }
        if s.chars().any(is_hidden_char) {
            return Err(InvalidValue(
                "a name may not contain control or invisible formatting characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Control characters, and the format characters (bidi overrides, zero-width joiners, BOM)
/// that make two different names look alike or flip the text around them.
fn is_hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

impl TryFrom<String> for DisplayName {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<DisplayName> for String {
    fn from(n: DisplayName) -> Self {
        n.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_ids_follow_the_documented_alphabet() {
        assert!(PlayerId::parse("p1").is_ok());
        assert!(PlayerId::parse("guest:AbC_9.x-1").is_ok());
        assert!(PlayerId::parse("a".repeat(64)).is_ok());
        assert!(PlayerId::parse("").is_err());
        assert!(PlayerId::parse("a".repeat(65)).is_err());
        assert!(PlayerId::parse("a b").is_err());
        assert!(PlayerId::parse("ä").is_err());
        assert!(PlayerId::parse("a/b").is_err());
    }

    #[test]
    fn display_names_refuse_control_and_bidi_characters_but_keep_markup_as_text() {
        assert_eq!(DisplayName::parse("  Ana ").unwrap().as_str(), "Ana");
        assert!(DisplayName::parse("<img src=x onerror=alert(1)>").is_ok());
        assert!(DisplayName::parse("Zoë 🎮").is_ok());
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("a\u{0007}b").is_err());
        assert!(DisplayName::parse("a\nb").is_err());
        assert!(DisplayName::parse("evil\u{202E}gnp.exe").is_err());
        assert!(DisplayName::parse("x".repeat(33)).is_err());
        assert!(DisplayName::parse("é".repeat(32)).is_ok());
    }

    #[test]
    fn board_ids_follow_the_documented_pattern() {
        for ok in ["global", "0", "level-3_hard", &"a".repeat(32)] {
            assert!(BoardId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Global", "-x", "_x", "a.b", "a b", "é", &"a".repeat(33)] {
            assert!(BoardId::parse(bad).is_err(), "{bad}");
        }
        assert!(BoardId::global().is_global());
    }

    #[test]
    fn ids_deserialize_only_when_valid() {
        assert!(serde_json::from_str::<PlayerId>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<PlayerId>("\"not ok\"").is_err());
        assert!(serde_json::from_str::<ActionName>("\"quest\"").is_ok());
        assert!(serde_json::from_str::<ActionName>("\"\"").is_err());
    }
}

//! The action catalog (`ACTION_CATALOG`): the actions the edge mints tokens for, with their
//! points, minimum duration and boards. Both services read it, so its rules live here once:
//! an entry that could never be minted is a problem when the settings are read, not a 500 at
//! the first mint. And [`Catalog::boards_of`] says which boards a verified token counts on.
//!
//! ```json
//! {"quest": {"points": 50, "min_seconds": 5, "boards": ["global", "level-1"]}}
//! ```

use crate::action::{parse_boards, points_allowed, ActionClaims, BoardsError};
use crate::action::{MAX_POINTS, MAX_VALUE};
use crate::ids::{ActionName, BoardId};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The setting the catalog is read from.
pub const CATALOG_SETTING: &str = "ACTION_CATALOG";

/// One action, checked: what a token minted for it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// `pts`: by the `brd` rule when `boards` is set, else non-zero and `|pts| ≤ MAX_POINTS`.
    pub points: i64,
    /// `nbf - iat`: at least 0, shorter than the token lifetime.
    pub min_seconds: i64,
    /// Written into minted tokens as `brd`; `None`: the token names none (then `global`).
    pub boards: Option<Vec<BoardId>>,
}

/// The catalog: entries by action name, in name order. Empty when the setting is unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    entries: BTreeMap<ActionName, CatalogEntry>,
}

/// Why the catalog, or one of its entries, was refused; one sentence naming the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogProblem {
    #[error(
        "{CATALOG_SETTING} must be a JSON object like {{\"quest\": {{\"points\": 50, \
         \"min_seconds\": 5, \"boards\": [\"global\"]}}}}: {0}"
    )]
    NotJson(String),
    #[error("{CATALOG_SETTING} entry {action:?} {problem}")]
    Entry {
        action: String,
        problem: EntryProblem,
    },
}

/// What is wrong with one entry (an entry may have several).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    #[error("is not a valid action name")]
    BadName,
    /// Not an object, a field of the wrong type, `points` missing, or an unknown field (a
    /// misspelt `"boards"` must not silently count on `global`).
    #[error("is malformed: {0}")]
    Malformed(String),
    #[error("must have non-zero points of at most {MAX_POINTS} in absolute value")]
    Points,
    #[error("names boards, so its points must be at most {MAX_VALUE} in absolute value")]
    Value,
    #[error("must have min_seconds of 0 or more")]
    NegativeMinSeconds,
    /// `nbf` must come before `exp`, or the token could never be redeemed.
    #[error("must have min_seconds shorter than ACTION_TOKEN_TTL ({ttl_secs} s)")]
    MinSecondsNotBelowTtl { ttl_secs: i64 },
    #[error("has bad boards: {0}")]
    Boards(BoardsError),
}

/// An entry as written, before its rules are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    points: i64,
    #[serde(default)]
    min_seconds: i64,
    #[serde(default)]
    boards: Option<Vec<String>>,
}

impl Catalog {
    /// Parses `json` and checks every entry against the rules a token is verified by, with
    /// `ttl_secs` the token lifetime (`ACTION_TOKEN_TTL`). Returns the entries without a problem
    /// and every problem found, so an edge can go on serving the good entries while it reports
    /// the others, and an aggregator can refuse to start naming them all.
    pub fn parse(json: &str, ttl_secs: i64) -> (Self, Vec<CatalogProblem>) {
        let raw: BTreeMap<String, serde_json::Value> = match serde_json::from_str(json) {
            Ok(raw) => raw,
            Err(e) => {
                return (
                    Self::default(),
                    vec![CatalogProblem::NotJson(e.to_string())],
                )
            }
        };
        let mut catalog = Self::default();
        let mut problems = Vec::new();
        for (action, value) in raw {
            match check_entry(&action, value, ttl_secs) {
                Ok((name, entry)) => {
                    catalog.entries.insert(name, entry);
                }
                Err(found) => {
                    problems.extend(found.into_iter().map(|problem| CatalogProblem::Entry {
                        action: action.clone(),
                        problem,
                    }))
                }
            }
        }
        (catalog, problems)
    }

    /// The action's checked name and entry; `None` for an action the catalog does not have.
    pub fn get(&self, action: &str) -> Option<(&ActionName, &CatalogEntry)> {
        self.entries.get_key_value(action)
    }

    /// Every entry, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&ActionName, &CatalogEntry)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The boards a verified token counts on: its `brd` when it has one, else the boards of the
    /// catalog entry for its `act`, else `["global"]` (DESIGN.md, "Tokens name their boards").
    pub fn boards_of(&self, claims: &ActionClaims) -> Vec<BoardId> {
        claims
            .brd
            .clone()
            .or_else(|| {
                let entry = self.entries.get(claims.act.as_str())?;
                entry.boards.clone()
            })
            .unwrap_or_else(|| vec![BoardId::global()])
    }
}

/// One entry by every rule, collecting each problem it has.
fn check_entry(
    action: &str,
    value: serde_json::Value,
    ttl_secs: i64,
) -> Result<(ActionName, CatalogEntry), Vec<EntryProblem>> {
    let mut problems = Vec::new();
    let name = ActionName::parse(action)
        .map_err(|_| problems.push(EntryProblem::BadName))
        .ok();
    let raw = match RawEntry::deserialize(value) {
        Ok(raw) => raw,
        Err(e) => {
            problems.push(EntryProblem::Malformed(e.to_string()));
            return Err(problems);
        }
    };
    // An entry that names boards, even refused ones, is held to the `brd` rule: that is the
    // token its operator meant.
    let names_boards = raw.boards.is_some();
    let boards = raw
        .boards
        .map(parse_boards)
        .transpose()
        .map_err(|e| problems.push(EntryProblem::Boards(e)))
        .ok();
    problems.extend(rule_problems(
        raw.points,
        raw.min_seconds,
        names_boards,
        ttl_secs,
    ));
    match (name, boards) {
        (Some(name), Some(boards)) if problems.is_empty() => Ok((
            name,
            CatalogEntry {
                points: raw.points,
                min_seconds: raw.min_seconds,
                boards,
            },
        )),
        _ => Err(problems),
    }
}

/// The points and min_seconds rules, the ones [`crate::action::ActionTokens::mint`] applies.
fn rule_problems(
    points: i64,
    min_seconds: i64,
    names_boards: bool,
    ttl_secs: i64,
) -> Vec<EntryProblem> {
    let mut problems = Vec::new();
    if !points_allowed(points, names_boards) {
        problems.push(if names_boards {
            EntryProblem::Value
        } else {
            EntryProblem::Points
        });
    }
    if min_seconds < 0 {
        problems.push(EntryProblem::NegativeMinSeconds);
    } else if min_seconds >= ttl_secs {
        problems.push(EntryProblem::MinSecondsNotBelowTtl { ttl_secs });
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{DEFAULT_TTL_SECS, MAX_BOARDS};
    use crate::PlayerId;

    fn parse(json: &str) -> (Catalog, Vec<CatalogProblem>) {
        Catalog::parse(json, DEFAULT_TTL_SECS)
    }

    fn entry_problems(json: &str) -> Vec<EntryProblem> {
        let (catalog, problems) = parse(json);
        assert!(catalog.is_empty(), "{catalog:?}");
        problems
            .into_iter()
            .map(|p| match p {
                CatalogProblem::Entry { problem, .. } => problem,
                other => panic!("{other}"),
            })
            .collect()
    }

    fn ids(ids: &[&str]) -> Vec<BoardId> {
        ids.iter().map(|b| BoardId::parse(*b).unwrap()).collect()
    }

    fn claims(act: &str, brd: Option<&[&str]>) -> ActionClaims {
        ActionClaims {
            jti: "j".repeat(22),
            sub: PlayerId::parse("p1").unwrap(),
            act: ActionName::parse(act).unwrap(),
            pts: 1,
            iat: 0,
            nbf: 0,
            exp: 300,
            brd: brd.map(ids),
        }
    }

    #[test]
    fn entries_are_read_with_their_boards_and_defaults() {
        let (catalog, problems) = parse(
            r#"{"quest": {"points": 50, "min_seconds": 5, "boards": ["global", "level-1"]},
                "coin": {"points": 1}}"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let (name, quest) = catalog.get("quest").unwrap();
        assert_eq!(name.as_str(), "quest");
        assert_eq!(
            quest,
            &CatalogEntry {
                points: 50,
                min_seconds: 5,
                boards: Some(ids(&["global", "level-1"])),
            }
        );
        let coin = catalog.get("coin").unwrap().1;
        assert_eq!((coin.min_seconds, coin.boards.as_ref()), (0, None));
        let names: Vec<&str> = catalog.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["coin", "quest"]);
        assert!(catalog.get("boss").is_none());
    }

    #[test]
    fn json_that_is_not_an_object_of_entries_is_one_problem() {
        for json in ["{not json", "[1, 2]", "\"quest\""] {
            let (catalog, problems) = parse(json);
            assert!(catalog.is_empty());
            assert!(
                matches!(problems.as_slice(), [CatalogProblem::NotJson(_)]),
                "{problems:?}"
            );
            assert!(problems[0]
                .to_string()
                .starts_with("ACTION_CATALOG must be"));
        }
    }

    #[test]
    fn without_boards_points_keep_the_old_bounds() {
        for points in ["0", "1000001", "-1000001", "9007199254740991"] {
            let json = format!(r#"{{"q": {{"points": {points}}}}}"#);
            assert_eq!(entry_problems(&json), [EntryProblem::Points], "{points}");
        }
        assert!(parse(r#"{"q": {"points": -1000000}}"#).1.is_empty());
    }

    #[test]
    fn with_boards_points_may_be_zero_and_reach_2_pow_53_minus_1() {
        for points in ["0", "1000001", "-9007199254740991"] {
            let json = format!(r#"{{"q": {{"points": {points}, "boards": ["best-lap"]}}}}"#);
            assert!(parse(&json).1.is_empty(), "{points}");
        }
        let too_big = r#"{"q": {"points": 9007199254740992, "boards": ["best-lap"]}}"#;
        assert_eq!(entry_problems(too_big), [EntryProblem::Value]);
    }

    #[test]
    fn boards_are_1_to_8_distinct_valid_ids() {
        let nine: Vec<String> = (0..=MAX_BOARDS).map(|i| format!("\"b{i}\"")).collect();
        let cases = [
            ("[]", BoardsError::Empty),
            (&*format!("[{}]", nine.join(",")), BoardsError::TooMany),
            (
                r#"["a", "a"]"#,
                BoardsError::Duplicate(BoardId::parse("a").unwrap()),
            ),
        ];
        for (boards, expected) in cases {
            let json = format!(r#"{{"q": {{"points": 5, "boards": {boards}}}}}"#);
            assert_eq!(
                entry_problems(&json),
                [EntryProblem::Boards(expected)],
                "{boards}"
            );
        }
        let bad_id = entry_problems(r#"{"q": {"points": 5, "boards": ["Level 1"]}}"#);
        assert!(matches!(
            bad_id.as_slice(),
            [EntryProblem::Boards(BoardsError::Invalid { id, .. })] if id == "Level 1"
        ));
    }

    #[test]
    fn min_seconds_is_at_least_zero_and_shorter_than_the_token_lifetime() {
        assert_eq!(
            entry_problems(r#"{"q": {"points": 5, "min_seconds": -1}}"#),
            [EntryProblem::NegativeMinSeconds]
        );
        let (_, problems) = Catalog::parse(r#"{"q": {"points": 5, "min_seconds": 60}}"#, 60);
        assert_eq!(
            problems,
            [CatalogProblem::Entry {
                action: "q".into(),
                problem: EntryProblem::MinSecondsNotBelowTtl { ttl_secs: 60 }
            }]
        );
        assert!(
            Catalog::parse(r#"{"q": {"points": 5, "min_seconds": 59}}"#, 60)
                .1
                .is_empty()
        );
    }

    #[test]
    fn a_malformed_or_misspelt_entry_is_named_and_the_others_are_kept() {
        let (catalog, problems) = parse(
            r#"{"ok": {"points": 1}, "typo": {"points": 1, "board": ["x"]},
                "text": {"points": "50"}, "none": {}, "flat": 3}"#,
        );
        assert_eq!(catalog.len(), 1);
        assert!(catalog.get("ok").is_some());
        let named: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(named.len(), 4, "{named:?}");
        for (action, needle) in [
            ("typo", "unknown field `board`"),
            ("text", "invalid type"),
            ("none", "missing field `points`"),
            ("flat", "invalid type"),
        ] {
            let prefix = format!("ACTION_CATALOG entry {action:?} is malformed: ");
            assert!(
                named
                    .iter()
                    .any(|p| p.starts_with(&prefix) && p.contains(needle)),
                "{action}: {named:?}"
            );
        }
    }

    #[test]
    fn every_problem_of_an_entry_is_reported() {
        let problems = entry_problems(
            r#"{"bad name": {"points": 0, "min_seconds": -5, "boards": ["x", "x"]}}"#,
        );
        assert_eq!(
            problems,
            [
                EntryProblem::BadName,
                EntryProblem::Boards(BoardsError::Duplicate(BoardId::parse("x").unwrap())),
                // Zero is allowed under the `brd` rule the entry asked for.
                EntryProblem::NegativeMinSeconds,
            ]
        );
        let (_, problems) = parse(r#"{"bad name": {"points": 1}}"#);
        assert_eq!(
            problems[0].to_string(),
            "ACTION_CATALOG entry \"bad name\" is not a valid action name"
        );
    }

    #[test]
    fn a_token_counts_on_its_brd_else_its_entrys_boards_else_global() {
        let (catalog, _) = parse(
            r#"{"lap": {"points": 5, "boards": ["best-lap", "weekly"]}, "coin": {"points": 1}}"#,
        );
        assert_eq!(
            catalog.boards_of(&claims("lap", Some(&["daily"]))),
            ids(&["daily"])
        );
        assert_eq!(
            catalog.boards_of(&claims("lap", None)),
            ids(&["best-lap", "weekly"])
        );
        assert_eq!(catalog.boards_of(&claims("coin", None)), ids(&["global"]));
        assert_eq!(
            catalog.boards_of(&claims("unlisted", None)),
            ids(&["global"])
        );
        assert_eq!(
            Catalog::default().boards_of(&claims("lap", None)),
            ids(&["global"])
        );
    }
}

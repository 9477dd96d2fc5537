//! Which names are the same name. A display name is kept in NFC; two names are one when
//! their NFKC case folds are equal (`Zoë` composed or decomposed, `ﬁsh` and `fish`, `ANA` and
//! `ana`), or when they are confusable: equal UTS #39 skeletons (`Ana` with a Cyrillic `А`,
//! `Iavor` and `lavor`). The database enforces both as unique indexes; [`backfill`] brings
//! rows written under the old rule (lowercase only) to these.

use crate::db::Db;
use std::collections::HashSet;
use unicode_normalization::UnicodeNormalization;

/// The rules version written in `users.name_rules` (see the migration).
pub(crate) const RULES: i16 = 1;

/// The name as it is stored and shown: composed (NFC).
pub(crate) fn display(name: &str) -> String {
    name.nfc().collect()
}

/// The uniqueness key: the NFKC case fold (NFKC, full case folding, NFKC again, as Unicode's
/// `NFKC_Casefold` is defined up to default-ignorable characters, which names refuse).
pub(crate) fn key(name: &str) -> String {
    let folded = caseless::default_case_fold_str(&name.nfkc().collect::<String>());
    folded.nfkc().collect()
}

/// The confusable skeleton, case-folded: names that a reader could mistake for one another
/// share it.
pub(crate) fn skeleton(name: &str) -> String {
    let nfkc: String = name.nfkc().collect();
    let skeleton: String = unicode_security::skeleton(&nfkc).collect();
    key(&skeleton)
}

/// A row written under the old rule.
#[derive(sqlx::FromRow)]
struct Legacy {
    player_id: String,
    name: String,
}

/// Recomputes the keys of rows written before the current rules, oldest first, once (an
/// advisory lock keeps instances starting together from doing it twice). A row whose new key
/// or skeleton an older row already holds keeps its old key and gets no skeleton: no
/// existing player loses their name or their login. Returns the rows updated.
pub(crate) async fn backfill(db: &Db) -> sqlx::Result<u64> {
    let mut tx = db.begin().await?;
    crate::db::query("SELECT pg_advisory_xact_lock(hashtext('users.name_rules'))")
        .execute(&mut *tx)
        .await?;
    let legacy: Vec<Legacy> = crate::db::query_as(
        "SELECT player_id, name FROM users WHERE name_rules < $1 ORDER BY created_at, player_id",
    )
    .bind(RULES)
    .fetch_all(&mut *tx)
    .await?;
    if legacy.is_empty() {
        return Ok(0);
    }
    let taken: Vec<(String, Option<String>)> =
        crate::db::query_as("SELECT name_key, name_skeleton FROM users WHERE name_rules >= $1")
            .bind(RULES)
            .fetch_all(&mut *tx)
            .await?;
    let mut keys: HashSet<String> = taken.iter().map(|t| t.0.clone()).collect();
    let mut skeletons: HashSet<String> = taken.into_iter().filter_map(|t| t.1).collect();
    for row in &legacy {
        let (k, s) = (key(&row.name), skeleton(&row.name));
        let fresh = !keys.contains(&k) && !skeletons.contains(&s);
        if fresh {
            keys.insert(k.clone());
            skeletons.insert(s.clone());
        }
        crate::db::query(
            "UPDATE users SET name = $2, name_rules = $5,
                 name_key = CASE WHEN $3::text IS NULL THEN name_key ELSE $3 END, name_skeleton = $4
             WHERE player_id = $1",
        )
        .bind(&row.player_id)
        .bind(display(&row.name))
        .bind(fresh.then_some(&k))
        .bind(fresh.then_some(&s))
        .bind(RULES)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(legacy.len() as u64)
}

/// Whether a write of `users` failed because another player has the name, in any case or form
/// (the unique keys on its folded key and its skeleton).
pub(crate) fn is_taken(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d)
        if matches!(d.constraint(), Some("users_name_key" | "users_name_skeleton")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composed_and_decomposed_forms_are_one_name_shown_composed() {
        assert_eq!(key("Zoë"), key("Zoe\u{308}"));
        assert_eq!(display("Zoe\u{308}"), "Zoë");
        assert_eq!(key("ﬁsh"), key("FISH"));
    }

    #[test]
    fn confusable_names_share_a_skeleton_and_different_names_do_not() {
        assert_eq!(skeleton("Ana"), skeleton("\u{410}na"));
        assert_eq!(skeleton("paypal"), skeleton("p\u{430}yp\u{430}l"));
        assert_eq!(skeleton("Iavor"), skeleton("lavor"));
        assert_ne!(skeleton("Ana"), skeleton("Anna"));
        assert_ne!(skeleton("Zoë"), skeleton("Zoe"));
    }
}

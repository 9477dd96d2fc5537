//! One visible name is one player: names are compared in NFKC case-folded form and by their
//! confusable skeleton (UTS #39), shown composed, and rows written under the old rule are
//! brought to the new one without taking anyone's name or login away.

use crate::helpers::*;
use serde_json::{json, Value};

async fn sign_in(app: &TestApp, route: &str, name: &str) -> (u16, Value) {
    let body = if route == "guest" {
        json!({ "name": name })
    } else {
        json!({ "name": name, "password": "correct horse battery" })
    };
    let r = app
        .http
        .post(format!("{}/api/auth/{route}", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The same name in another Unicode form, another case, or with look-alike letters from
/// another script is taken; a merely similar name is not.
#[tokio::test]
async fn a_name_in_another_form_or_with_look_alike_letters_is_taken() {
    let app = spawn_app().await;
    let taken = [
        ("Ana", "\u{410}na"),             // Cyrillic capital A
        ("Zoë", "Zoe\u{308}"),            // composed, then decomposed
        ("ﬁsh", "FISH"),                  // a ligature, then capitals
        ("paypal", "p\u{430}yp\u{430}l"), // Cyrillic small a
        ("Iavor", "lavor"),               // capital I, small L
    ];
    for (first, second) in taken {
        let (status, _) = sign_in(&app, "guest", first).await;
        assert_eq!(status, 201, "{first}");
        let (status, body) = sign_in(&app, "register", second).await;
        assert_eq!(status, 409, "{second} after {first}");
        assert_eq!(body["error"]["code"], "NAME_TAKEN");
        let (status, _) = sign_in(&app, "guest", second).await;
        assert_eq!(status, 409, "{second} after {first}, as a guest");
    }
    let (status, _) = sign_in(&app, "guest", "Anna").await;
    assert_eq!(status, 201, "a different name is free");
}

/// A name typed decomposed is stored and shown composed, and logging in with either form
/// finds the same player.
#[tokio::test]
async fn names_are_shown_composed_and_found_in_either_form() {
    let app = spawn_app().await;
    let (status, reg) = sign_in(&app, "register", "Zoe\u{308}").await;
    assert_eq!(status, 201);
    assert_eq!(reg["name"], "Zoë");
    for typed in ["Zoë", "Zoe\u{308}", "ZOË"] {
        let (status, login) = sign_in(&app, "login", typed).await;
        assert_eq!(status, 200, "{typed:?}");
        assert_eq!(login["player_id"], reg["player_id"]);
    }
}

/// Rows written under the old rule (lowercase only) get the new keys at start-up, oldest
/// first; a later row that would collide keeps its old key, its name and its login, and new
/// look-alikes of either are refused.
#[tokio::test]
async fn rows_from_before_the_rule_are_brought_to_it_without_losing_anyone() {
    let db = scoreboard_tests::fresh_database().await.unwrap();
    scoreboard_aggregator::migrate(&db.url).await.unwrap();
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let legacy = [
        ("old_nfc", "Zoë", "2026-01-01"),
        ("old_nfd", "Zoe\u{308}", "2026-01-02"),
        ("old_latin", "Ana", "2026-01-03"),
        ("old_cyrillic", "\u{410}na", "2026-01-04"),
    ];
    for (id, name, at) in legacy {
        sqlx::query(
            "INSERT INTO users (player_id, name, name_key, created_at, name_rules)
             VALUES ($1, $2, $3, $4::timestamptz, 0)",
        )
        .bind(id)
        .bind(name)
        .bind(name.to_lowercase())
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
    }
    let url = db.url.clone();
    let app = spawn_app_with(move |vars| {
        vars.insert("DATABASE_URL".into(), url);
    })
    .await;
    let rows: Vec<(String, String, Option<String>, i16)> = sqlx::query_as(
        "SELECT player_id, name, name_skeleton, name_rules FROM users ORDER BY created_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(rows.iter().all(|r| r.3 == 1), "{rows:?}");
    assert_eq!(rows[1].1, "Zoë", "names are stored composed");
    let skeletons: Vec<bool> = rows.iter().map(|r| r.2.is_some()).collect();
    assert_eq!(
        skeletons,
        [true, false, true, false],
        "only the older of each pair keeps the name's keys"
    );
    for (name, status) in [
        ("zoe\u{308}", 409),
        ("Ana", 409),
        ("\u{410}NA", 409),
        ("Zoey", 201),
    ] {
        assert_eq!(sign_in(&app, "guest", name).await.0, status, "{name:?}");
    }
}

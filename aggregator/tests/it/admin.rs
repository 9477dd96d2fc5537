//! Admin routes: the key, bans, audited adjustments, rebuild, events, players under the game's
//! own ids; and the clean-up job.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn admin_routes_need_the_admin_key() {
    let app = spawn_app().await;
    let p = app.guest("Target").await;
    for key in [
        None,
        Some("wrong-key"),
        Some(JWT_SECRET),
        Some(p.token.as_str()),
    ] {
        let mut req = app
            .http
            .post(format!("{}/admin/players/{}/ban", app.base, p.id));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let (s, c, body) = code_of(req.send().await.unwrap()).await;
        assert_eq!((s, c.as_str()), (401, "UNAUTHENTICATED"));
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("ADMIN_API_KEY"), "{message}");
    }
    let banned: bool = app
        .player_row(
            "SELECT banned_at IS NOT NULL FROM users WHERE player_id = $1",
            &p.id,
        )
        .await;
    assert!(!banned);
}

#[tokio::test]
async fn a_ban_removes_the_player_from_the_board_and_an_unban_restores_them() {
    let redis = scoreboard_tests::fresh_redis().await.unwrap();
    let (url, prefix) = (redis.url.clone(), redis.key_prefix.clone());
    let app = spawn_app_with(move |v| {
        v.insert("REDIS_URL".into(), url);
        v.insert("REDIS_KEY_PREFIX".into(), prefix);
    })
    .await;
    let cheat = app.guest("Cheat").await;
    let honest = app.guest("Honest").await;
    app.scored(&cheat, 100).await;
    app.scored(&honest, 10).await;
    assert_eq!(app.leaderboard().await.top[0].player_id.as_str(), cheat.id);

    let (s, body) = admin(
        &app,
        reqwest::Method::POST,
        &format!("/admin/players/{}/ban", cheat.id),
        Some(json!({"reason": "bot"})),
    )
    .await;
    assert_eq!((s, body["banned"].as_bool()), (200, Some(true)));
    let top = app.leaderboard().await.top;
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].player_id.as_str(), honest.id);
    assert_eq!(
        app.player(&honest.id).await.rank,
        1,
        "ranks skip the banned player"
    );
    let r = app.get(format!("/api/players/{}", cheat.id)).await;
    assert_eq!(r.status(), 404);

    let (s, _) = admin(
        &app,
        reqwest::Method::POST,
        &format!("/admin/players/{}/unban", cheat.id),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(app.leaderboard().await.top[0].player_id.as_str(), cheat.id);
    let audit: Vec<String> = sqlx::query_scalar("SELECT action FROM admin_audit ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(audit, vec!["ban", "unban"]);
    let (s, _) = admin(
        &app,
        reqwest::Method::POST,
        "/admin/players/nobody/ban",
        None,
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn an_adjustment_is_an_audited_score_event() {
    let app = spawn_app().await;
    let p = app.guest("Adjusted").await;
    app.scored(&p, 10).await;
    let (s, body) = admin(
        &app,
        reqwest::Method::POST,
        &format!("/admin/players/{}/adjust", p.id),
        Some(json!({"points": -4, "reason": "refund of a duplicated reward"})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["score"], 6);
    assert_eq!(app.total(&p.id).await, 6);
    assert_eq!(
        Some(app.leaderboard().await.version),
        body["leaderboard_version"].as_i64()
    );
    let (s, ev) = admin(
        &app,
        reqwest::Method::GET,
        &format!("/admin/players/{}/events", p.id),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let events = ev["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (
            events[0]["action"].as_str(),
            events[0]["pts"].as_i64(),
            events[0]["score_after"].as_i64()
        ),
        (Some("admin:adjust"), Some(-4), Some(6))
    );
    let detail: serde_json::Value =
        sqlx::query_scalar("SELECT detail FROM admin_audit WHERE action = 'adjust'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(detail["reason"], "refund of a duplicated reward");
    for bad in [
        json!({"points": 0, "reason": "x"}),
        json!({"points": 5, "reason": " "}),
        json!({"points": 5}),
    ] {
        let (s, _) = admin(
            &app,
            reqwest::Method::POST,
            &format!("/admin/players/{}/adjust", p.id),
            Some(bad),
        )
        .await;
        assert_eq!(s, 400);
    }
    let (s, _) = admin(
        &app,
        reqwest::Method::POST,
        "/admin/leaderboard/rebuild",
        None,
    )
    .await;
    assert_eq!(s, 400, "no Redis configured");
}

#[tokio::test]
async fn the_janitor_deletes_only_long_expired_rows() {
    let app = spawn_app().await;
    let p = app.guest("Old").await;
    sqlx::query("INSERT INTO consumed_tokens (jti, player_id, expires_at) VALUES
                 ('old', $1, now() - interval '1 hour'), ('recent', $1, now() - interval '1 minute'),
                 ('live', $1, now() + interval '5 minutes')")
        .bind(&p.id).execute(&app.db).await.unwrap();
    let (tokens, _) = scoreboard_aggregator::sweep_expired_rows(&app.db)
        .await
        .unwrap();
    assert_eq!(tokens, 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT jti FROM consumed_tokens ORDER BY jti")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(left, vec!["live", "recent"]);
}

#[tokio::test]
async fn a_new_table_is_analyzed_once_it_holds_rows() {
    let app = spawn_app().await;
    let p = app.guest("Many").await;
    sqlx::query(
        "INSERT INTO consumed_tokens (jti, player_id, expires_at)
         SELECT 'bulk-' || i, $1, now() + interval '1 hour' FROM generate_series(1, 600) AS i",
    )
    .bind(&p.id)
    .execute(&app.db)
    .await
    .unwrap();
    // The instance's own job does it (autovacuum would write last_autoanalyze instead).
    let analyzed = "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = $1";
    let mut waited = 0;
    while !sqlx::query_scalar::<_, bool>(analyzed)
        .bind("consumed_tokens")
        .fetch_one(&app.db)
        .await
        .unwrap()
    {
        assert!(waited < 150, "consumed_tokens was not analyzed within 15 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let entries: bool = sqlx::query_scalar(analyzed)
        .bind("entries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        !entries,
        "a table with a handful of rows is left to autovacuum"
    );
}

/// A player under the game's own account id: created once (`201`), the same call again
/// changes nothing (`200`), a rename shows on the board at once, a name another player has is
/// `409`, a bad id or name `400`; and a session the game's backend signs for it, which the
/// aggregator never issued, redeems tokens like any other.
#[tokio::test]
async fn a_game_creates_its_own_players_and_signs_their_sessions() {
    use scoreboard_protocol::session::{SessionIssuer, SessionPolicy, SessionSigningKey};
    let app = spawn_app().await;
    let put = async |id: &str, body: serde_json::Value| {
        admin(
            &app,
            reqwest::Method::PUT,
            &format!("/admin/players/{id}"),
            Some(body),
        )
        .await
    };
    let (s, created) = put("game:42", json!({"name": "Ada"})).await;
    assert_eq!(
        (s, created["created"].as_bool()),
        (201, Some(true)),
        "{created}"
    );
    let (s, again) = put("game:42", json!({"name": "Ada"})).await;
    assert_eq!(
        (s, again["created"].as_bool()),
        (200, Some(false)),
        "{again}"
    );

    // The game's backend signs a session itself (no sign-in route involved).
    let issuer = SessionIssuer {
        key: SessionSigningKey::Hs256(scoreboard_protocol::jwt::HmacSecret::new(JWT_SECRET)),
        policy: SessionPolicy::default(),
        ttl_secs: 3600,
    };
    let id = scoreboard_protocol::PlayerId::parse("game:42").unwrap();
    let session = issuer.issue(&id, "Ada", "backend-session-1", now()).token;
    let r = app
        .post_score(&session, &mint("game:42", 30, 0, 300, now()))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(app.leaderboard().await.top[0].name, "Ada");

    let (s, renamed) = put("game:42", json!({"name": "Ada Lovelace"})).await;
    assert_eq!(
        (s, renamed["created"].as_bool()),
        (200, Some(false)),
        "{renamed}"
    );
    assert_eq!(
        app.leaderboard().await.top[0].name,
        "Ada Lovelace",
        "the board shows the new name"
    );
    assert_eq!(app.player("game:42").await.name, "Ada Lovelace");

    let other = app.guest("Grace").await;
    let (s, taken) = put("game:42", json!({"name": "GRACE"})).await;
    assert_eq!(
        (s, taken["error"]["code"].as_str()),
        (409, Some("NAME_TAKEN"))
    );
    for (id, body) in [
        ("has space", json!({"name": "X"})),
        ("game:43", json!({"name": ""})),
        ("game:43", json!({"nickname": "X"})),
    ] {
        let (s, refused) = put(id, body.clone()).await;
        assert_eq!(
            (s, refused["error"]["code"].as_str()),
            (400, Some("BAD_REQUEST")),
            "{id} {body}"
        );
    }
    assert_eq!(app.player(&other.id).await.name, "Grace");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM admin_audit WHERE action = 'player_put'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        audited, 2,
        "the creation and the rename; the call that changed nothing is not"
    );
}

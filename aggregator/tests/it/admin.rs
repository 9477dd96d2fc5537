//! Admin routes: the key, bans, audited adjustments, rebuild, events; and the clean-up job.

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

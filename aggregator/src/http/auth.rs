//! Sign-in routes: guest, register, login, logout. Passwords are hashed with Argon2id on a
//! blocking thread (it is deliberately slow CPU work that would stall the async workers).

use super::extract::{Authenticated, JsonBody};
use crate::clock::now_secs;
use crate::error::{AppError, Result};
use crate::names;
use crate::state::AppState;
use anyhow::Context;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use scoreboard_protocol::snapshot::rfc3339_millis;
use scoreboard_protocol::{DisplayName, ErrorCode, PlayerId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GuestRequest {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Credentials {
    name: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("name", &self.name)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct SessionResponse {
    player_id: String,
    name: String,
    token: String,
    expires_at: String,
}

const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_BYTES: usize = 256;

/// The name as it will be shown: valid, and composed (NFC) so one visible name is one string.
fn display_name(raw: &str) -> Result<DisplayName> {
    DisplayName::parse(names::display(raw))
        .map_err(|e| AppError::with_message(ErrorCode::BadRequest, e.0))
}

fn new_player_id() -> PlayerId {
    use rand::{distributions::Alphanumeric, Rng};
    let s: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    PlayerId::parse(format!("p_{s}")).expect("alphanumeric ids are valid")
}

fn new_jti() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Creates the user; `409 NAME_TAKEN` when the name exists in any case or form, or looks
/// like one that does.
async fn create_user(
    state: &AppState,
    name: &DisplayName,
    password_hash: Option<String>,
) -> Result<PlayerId> {
    let id = new_player_id();
    let res = crate::db::query(
        "INSERT INTO users (player_id, name, name_key, name_skeleton, name_rules, password_hash)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.as_str())
    .bind(name.as_str())
    .bind(names::key(name.as_str()))
    .bind(names::skeleton(name.as_str()))
    .bind(names::RULES)
    .bind(password_hash)
    .execute(&state.db)
    .await;
    match res {
        Ok(_) => Ok(id),
        Err(e) if names::is_taken(&e) => Err(AppError::code(ErrorCode::NameTaken)),
        Err(e) => Err(e.into()),
    }
}

/// Records and signs a session.
async fn start_session(state: &AppState, player: &PlayerId, name: &str) -> Result<SessionResponse> {
    let jti = new_jti();
    let issued = state
        .config
        .session_issuer
        .issue(player, name, &jti, now_secs());
    crate::db::query(
        "INSERT INTO sessions (jti, player_id, expires_at) VALUES ($1, $2, to_timestamp($3))",
    )
    .bind(&jti)
    .bind(player.as_str())
    .bind(issued.expires_at as f64)
    .execute(&state.db)
    .await?;
    Ok(SessionResponse {
        player_id: player.to_string(),
        name: name.to_owned(),
        token: issued.token,
        expires_at: rfc3339_millis(issued.expires_at * 1000),
    })
}

pub(crate) async fn guest(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<GuestRequest>,
) -> Result<(StatusCode, Json<SessionResponse>)> {
    if !state.config.allow_guests {
        return Err(AppError::with_message(
            ErrorCode::Forbidden,
            "Guest sign-in is disabled; register instead.",
        ));
    }
    let name = display_name(&req.name)?;
    let id = create_user(&state, &name, None).await?;
    Ok((
        StatusCode::CREATED,
        Json(start_session(&state, &id, name.as_str()).await?),
    ))
}

fn check_password(p: &str) -> Result<()> {
    if p.chars().count() < MIN_PASSWORD_CHARS || p.len() > MAX_PASSWORD_BYTES {
        return Err(AppError::with_message(
            ErrorCode::BadRequest,
            "A password has at least 8 characters and at most 256 bytes.",
        ));
    }
    Ok(())
}

pub(crate) async fn register(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<Credentials>,
) -> Result<(StatusCode, Json<SessionResponse>)> {
    let name = display_name(&req.name)?;
    check_password(&req.password)?;
    let password = req.password;
    let hash = tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await
    .context("the hashing task failed")??;
    let id = create_user(&state, &name, Some(hash)).await?;
    Ok((
        StatusCode::CREATED,
        Json(start_session(&state, &id, name.as_str()).await?),
    ))
}

/// A hash of a password nobody has, verified when the name is unknown so that the answer
/// takes as long as for a known name (no user enumeration by timing).
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"not-a-password-anyone-has", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

pub(crate) async fn login(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<Credentials>,
) -> Result<Json<SessionResponse>> {
    // The name's key, or for a player registered before the current name rules whose new key
    // another player holds, their old key (the name lowercased as typed); that exact match wins.
    let typed = req.name.trim();
    let legacy_key = typed.to_lowercase();
    let row: Option<(String, String, Option<String>, bool)> = crate::db::query_as(
        "SELECT player_id, name, password_hash, banned_at IS NOT NULL FROM users
         WHERE name_key = $1 OR name_key = $2 ORDER BY name_key = $2 AND name_key <> $1 DESC LIMIT 1",
    )
    .bind(names::key(typed))
    .bind(&legacy_key)
    // The primary: a player who registered a moment ago must be able to sign in, and a ban
    // must hold at once.
    .fetch_optional(&state.db)
    .await?;
    let stored = row.as_ref().and_then(|r| r.2.clone());
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || {
        let hash = stored.as_deref().unwrap_or_else(|| dummy_hash());
        let matches = PasswordHash::new(hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        matches && stored.is_some()
    })
    .await
    .context("the verifying task failed")?;
    let Some((id, name, _, banned)) = row.filter(|_| ok) else {
        tracing::warn!("auth failed: bad credentials");
        return Err(AppError::code(ErrorCode::BadCredentials));
    };
    if banned {
        return Err(AppError::code(ErrorCode::PlayerBanned));
    }
    let id = PlayerId::parse(id).context("a stored player id is invalid")?;
    Ok(Json(start_session(&state, &id, &name).await?))
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    Authenticated(session): Authenticated,
) -> Result<StatusCode> {
    // Sessions minted elsewhere have no row yet: insert one, revoked.
    crate::db::query(
        "INSERT INTO sessions (jti, player_id, expires_at, revoked_at)
         SELECT $1, $2, to_timestamp($3), now() WHERE EXISTS (SELECT 1 FROM users WHERE player_id = $2)
         ON CONFLICT (jti) DO UPDATE SET revoked_at = coalesce(sessions.revoked_at, now())",
    )
    .bind(&session.jti)
    .bind(session.player_id.as_str())
    .bind(session.expires_at as f64)
    .execute(&state.db)
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

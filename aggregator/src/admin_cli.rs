//! `scoreboard-aggregator admin`: the admin HTTP API from a terminal or a script. Tables for
//! people, `--json` for scripts (the API's own JSON, one document per command), and an exit
//! code a script can branch on:
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done |
//! | 2 | the command line is wrong (clap prints why) |
//! | 3 | the API refused the request (a 4xx other than 401 and 404); its code and message are printed |
//! | 4 | not found: no such board, player or period (404) |
//! | 5 | the admin key is missing (`ADMIN_API_KEY` unset) or wrong (401) |
//! | 6 | the aggregator could not be reached, timed out, or failed (5xx) |
//!
//! The key is read from `ADMIN_API_KEY` only: an argument would show in `ps` and shell history.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::Duration;

/// The aggregator's admin API, from the command line.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The aggregator's base URL.
    #[arg(
        long,
        env = "SCOREBOARD_URL",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    url: String,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Boards: list, show, create or change, hide.
    #[command(subcommand)]
    Boards(BoardsCommand),
    /// Players: show, create or rename, their score events, ban, unban, adjust.
    #[command(subcommand)]
    Players(PlayersCommand),
    /// A board's closed periods, and closing the current one now.
    #[command(subcommand)]
    Periods(PeriodsCommand),
    /// Rebuild every Redis board from PostgreSQL.
    Rebuild,
}

#[derive(Debug, Subcommand)]
enum BoardsCommand {
    /// Every board, hidden ones included.
    List,
    /// One board's definition.
    Show { id: String },
    /// Create a board, or change one (order, operator, reset and time zone are fixed once it
    /// has a score).
    Put(BoardPut),
    /// Hide a board from the public lists and reads (its scores stay).
    Hide { id: String },
}

#[derive(Debug, Args)]
struct BoardPut {
    id: String,
    #[arg(long)]
    title: String,
    /// `desc` (higher is better) or `asc` (lower is better).
    #[arg(long)]
    order: String,
    /// `sum`, `best` or `latest`.
    #[arg(long)]
    operator: String,
    /// `never` (the default), `hourly`, `daily`, `weekly`, `monthly`, or a cron expression.
    #[arg(long)]
    reset: Option<String>,
    /// An IANA time zone for the resets (default `UTC`).
    #[arg(long)]
    timezone: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    value_min: Option<i64>,
    #[arg(long, allow_hyphen_values = true)]
    value_max: Option<i64>,
    /// How many of a closed period's first places are kept as its results (1-1000).
    #[arg(long)]
    results_size: Option<i32>,
    /// Create or keep it hidden.
    #[arg(long)]
    hidden: bool,
}

#[derive(Debug, Subcommand)]
enum PlayersCommand {
    /// A player's score and rank on `global`, and their standing on every public board.
    Show { id: String },
    /// Create a player under the game's own id, or rename one.
    Put {
        id: String,
        #[arg(long)]
        name: String,
    },
    /// A player's score events, newest first.
    Events {
        id: String,
        /// At most this many (1-500).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Only events older than this event id (to page).
        #[arg(long)]
        before: Option<i64>,
    },
    /// Take a player off every board and refuse their updates.
    Ban {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Put a banned player back.
    Unban { id: String },
    /// Add points (either sign) to a player's value on a board, as an audited event.
    Adjust {
        id: String,
        #[arg(long, allow_hyphen_values = true)]
        points: i64,
        #[arg(long)]
        reason: String,
        /// The board (default `global`).
        #[arg(long)]
        board: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum PeriodsCommand {
    /// A board's closed periods in which somebody scored, newest first.
    List {
        board: String,
        #[arg(long, default_value_t = 10)]
        limit: i64,
    },
    /// End the board's current period now (results and the webhook event at once).
    Close { board: String },
}

/// How a command ended, as its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Refused = 3,
    NotFound = 4,
    Unauthorized = 5,
    Unavailable = 6,
}

type Outcome = Result<Value, Failure>;

/// Runs one admin command and returns its exit code.
pub fn run(args: AdminArgs) -> ExitCode {
    let Ok(key) = std::env::var("ADMIN_API_KEY") else {
        eprintln!("error: set ADMIN_API_KEY to the aggregator's admin key");
        return ExitCode::from(Failure::Unauthorized as u8);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let Ok(runtime) = runtime else {
        eprintln!("error: cannot start the async runtime");
        return ExitCode::FAILURE;
    };
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("a client builds"),
        base: args.url.trim_end_matches('/').to_owned(),
        key,
    };
    match runtime.block_on(dispatch(&api, &args.command, args.json)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => ExitCode::from(f as u8),
    }
}

async fn dispatch(api: &Api, command: &AdminCommand, json: bool) -> Result<(), Failure> {
    let (value, view): (Value, View) = match command {
        AdminCommand::Boards(c) => boards(api, c).await?,
        AdminCommand::Players(c) => players(api, c).await?,
        AdminCommand::Periods(c) => periods(api, c).await?,
        AdminCommand::Rebuild => {
            let v = api
                .call(Method::POST, "/admin/leaderboard/rebuild", None)
                .await?;
            (v, View::Fields)
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        view.print(&value);
    }
    Ok(())
}

async fn boards(api: &Api, c: &BoardsCommand) -> Result<(Value, View), Failure> {
    const COLUMNS: &[&str] = &[
        "id", "title", "order", "operator", "reset", "timezone", "public",
    ];
    Ok(match c {
        BoardsCommand::List => {
            let v = api.call(Method::GET, "/admin/boards", None).await?;
            (v, View::Table("boards", COLUMNS))
        }
        BoardsCommand::Show { id } => (board(api, id).await?, View::Fields),
        BoardsCommand::Put(b) => {
            let body = json!({"title": b.title, "order": b.order, "operator": b.operator,
                "reset": b.reset, "timezone": b.timezone, "value_min": b.value_min,
                "value_max": b.value_max, "results_size": b.results_size, "public": !b.hidden});
            let body = without_nulls(body);
            let v = api
                .call(
                    Method::PUT,
                    &format!("/admin/boards/{}", seg(&b.id)),
                    Some(body),
                )
                .await?;
            (v, View::Fields)
        }
        BoardsCommand::Hide { id } => {
            let mut def = board(api, id).await?;
            def["public"] = json!(false);
            let body = without_keys(def, &["id"]);
            let v = api
                .call(
                    Method::PUT,
                    &format!("/admin/boards/{}", seg(id)),
                    Some(body),
                )
                .await?;
            (v, View::Fields)
        }
    })
}

/// One board's definition from the list (the admin API has no single-board read).
async fn board(api: &Api, id: &str) -> Outcome {
    let list = api.call(Method::GET, "/admin/boards", None).await?;
    let found = list["boards"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["id"] == id));
    found.cloned().ok_or_else(|| {
        eprintln!("error: no board {id:?}");
        Failure::NotFound
    })
}

async fn players(api: &Api, c: &PlayersCommand) -> Result<(Value, View), Failure> {
    let path = |id: &str, rest: &str| format!("/admin/players/{}{rest}", seg(id));
    Ok(match c {
        PlayersCommand::Show { id } => {
            let v = api
                .call(Method::GET, &format!("/api/players/{}", seg(id)), None)
                .await?;
            (
                v,
                View::FieldsThen("boards", &["board", "period", "score", "rank"]),
            )
        }
        PlayersCommand::Put { id, name } => {
            let v = api
                .call(Method::PUT, &path(id, ""), Some(json!({"name": name})))
                .await?;
            (v, View::Fields)
        }
        PlayersCommand::Events { id, limit, before } => {
            let before = before.map(|b| format!("&before={b}")).unwrap_or_default();
            let q = format!("/events?limit={limit}{before}");
            let v = api.call(Method::GET, &path(id, &q), None).await?;
            const COLUMNS: &[&str] = &[
                "id",
                "board_id",
                "period",
                "action",
                "pts",
                "score_after",
                "created_at",
            ];
            (v, View::Table("events", COLUMNS))
        }
        PlayersCommand::Ban { id, reason } => {
            let body = reason.as_ref().map(|r| json!({"reason": r}));
            (
                api.call(Method::POST, &path(id, "/ban"), body).await?,
                View::Fields,
            )
        }
        PlayersCommand::Unban { id } => (
            api.call(Method::POST, &path(id, "/unban"), None).await?,
            View::Fields,
        ),
        PlayersCommand::Adjust {
            id,
            points,
            reason,
            board,
        } => {
            let body = without_nulls(json!({"points": points, "reason": reason, "board": board}));
            (
                api.call(Method::POST, &path(id, "/adjust"), Some(body))
                    .await?,
                View::Fields,
            )
        }
    })
}

async fn periods(api: &Api, c: &PeriodsCommand) -> Result<(Value, View), Failure> {
    Ok(match c {
        PeriodsCommand::List { board, limit } => {
            let p = format!("/api/boards/{}/periods?limit={limit}", seg(board));
            let v = api.call(Method::GET, &p, None).await?;
            (v, View::Table("periods", &["id", "starts_at", "ends_at"]))
        }
        PeriodsCommand::Close { board } => {
            let p = format!("/admin/boards/{}/close-period", seg(board));
            (api.call(Method::POST, &p, None).await?, View::Fields)
        }
    })
}

/// A path segment from an id, percent-encoded so no id can reach another route.
fn seg(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn without_nulls(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
    }
    v
}

fn without_keys(mut v: Value, keys: &[&str]) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| !keys.contains(&k.as_str()));
    }
    v
}

/// The aggregator, with the admin key.
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    /// One request; the answer's JSON, or the failure it means (said on standard error).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Outcome {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            eprintln!("error: the aggregator at {} did not answer: {e}", self.base);
            Failure::Unavailable
        })?;
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status < 400 {
            return Ok(v);
        }
        let code = v["error"]["code"].as_str().unwrap_or("(no code)");
        let message = v["error"]["message"].as_str().unwrap_or("(no message)");
        eprintln!("error: {status} {code}: {message}");
        Err(match status {
            401 => Failure::Unauthorized,
            404 => Failure::NotFound,
            s if s >= 500 => Failure::Unavailable,
            _ => Failure::Refused,
        })
    }
}

/// How an answer is shown to a person.
#[derive(Debug, Clone, Copy)]
enum View {
    /// Its fields, one `key: value` a line.
    Fields,
    /// The array under a key, as a table of these columns.
    Table(&'static str, &'static [&'static str]),
    /// Its fields but the array under a key, then that array as a table.
    FieldsThen(&'static str, &'static [&'static str]),
}

impl View {
    fn print(self, v: &Value) {
        match self {
            View::Fields => fields(v, None),
            View::Table(key, columns) => table(&v[key], columns),
            View::FieldsThen(key, columns) => {
                fields(v, Some(key));
                println!();
                table(&v[key], columns);
            }
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fields(v: &Value, except: Option<&str>) {
    let Some(o) = v.as_object() else {
        println!("{}", text(v));
        return;
    };
    let width = o.keys().map(String::len).max().unwrap_or(0);
    for (k, x) in o.iter().filter(|(k, _)| Some(k.as_str()) != except) {
        println!("{k:width$}  {}", text(x));
    }
}

fn table(rows: &Value, columns: &[&str]) {
    let rows = rows.as_array().cloned().unwrap_or_default();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| text(&r[*c])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|c| c.to_uppercase()).collect());
    for row in cells {
        line(row);
    }
    if rows.is_empty() {
        println!("(none)");
    }
}

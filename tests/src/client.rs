//! Small helpers for end-to-end tests, so that a request reads as what it asks: JSON in and
//! out without the send/unwrap/json chains, and a guest signed in at any base URL.

use serde_json::{json, Value};

/// `GET url` as JSON; panics with the URL when there is no answer or it is not JSON.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// `GET url` as text (e.g. a Prometheus exposition); panics with the URL on failure.
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// A metric's value in a Prometheus text exposition, summed over its label sets (so a plain
/// gauge reads as itself); 0 when absent.
pub fn metric(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A player signed in as a guest.
#[derive(Debug, Clone)]
pub struct Guest {
    pub id: String,
    pub token: String,
}

/// `POST {base}/api/auth/guest`, which must answer 201.
pub async fn guest(http: &reqwest::Client, base: &str, name: &str) -> Guest {
    let r = http
        .post(format!("{base}/api/auth/guest"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("guest sign-in at {base}: {e}"));
    let status = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    assert_eq!(status, 201, "guest sign-in of {name:?}: {v}");
    Guest {
        id: v["player_id"].as_str().unwrap_or_default().to_owned(),
        token: v["token"].as_str().unwrap_or_default().to_owned(),
    }
}

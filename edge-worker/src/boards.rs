//! Which boards exist, as this isolate last heard from the aggregator's `GET /api/boards`: so
//! that a stream of an unknown board is a `404` at once, not a hub that retries forever, and
//! no Durable Object is woken for a board nobody defined. Known ids are trusted for
//! [`FRESH_MS`]. The aggregator is the authority: an id the list lacks is asked about on its
//! own (`GET /api/boards/{id}`), so a board created a moment ago is found at once.

use crate::Cx;
use std::cell::RefCell;
use std::collections::HashSet;

/// How long a list is used as it is.
const FRESH_MS: u64 = 10_000;
/// The list is small; the read must not hold up a stream for long.
const LIST_TIMEOUT_MS: u64 = 2_000;

struct Known {
    fetched_at: u64,
    ids: HashSet<String>,
}

thread_local! {
    // An isolate runs one request at a time per thread, and the list is only ever replaced.
    static KNOWN: RefCell<Option<Known>> = const { RefCell::new(None) };
}

/// Whether `id` is a public board; `None` when the aggregator cannot say (and no list is
/// at hand).
pub(crate) async fn exists(cx: &Cx<'_>, id: &str) -> Option<bool> {
    let now = worker::Date::now().as_millis();
    let (hit, age) = KNOWN.with_borrow(|k| match k {
        Some(k) => (k.ids.contains(id), now.saturating_sub(k.fetched_at)),
        None => (false, u64::MAX),
    });
    if hit && age < FRESH_MS {
        return Some(true);
    }
    if age < FRESH_MS {
        // A fresh list without it: the board may be newer than the list.
        let found = ask_about(cx, id).await?;
        if found {
            KNOWN.with_borrow_mut(|k| k.as_mut().map(|k| k.ids.insert(id.to_owned())));
        }
        return Some(found);
    }
    match fetch_ids(cx).await {
        Some(ids) => {
            let found = ids.contains(id);
            KNOWN.set(Some(Known {
                fetched_at: now,
                ids,
            }));
            Some(found)
        }
        // The aggregator is away: an id we knew stays known.
        None => (age != u64::MAX).then_some(hit),
    }
}

/// Whether the aggregator has the public board `id` (its snapshot answers `200`, `404` when
/// there is none); `None` when it cannot say.
async fn ask_about(cx: &Cx<'_>, id: &str) -> Option<bool> {
    let base = cx.config.aggregator_url.as_ref()?;
    let url = format!("{base}/api/boards/{id}");
    let resp = crate::upstream::get_with_timeout(&url, LIST_TIMEOUT_MS).await?;
    match resp.status_code() {
        200 => Some(true),
        404 => Some(false),
        _ => None,
    }
}

async fn fetch_ids(cx: &Cx<'_>) -> Option<HashSet<String>> {
    let base = cx.config.aggregator_url.as_ref()?;
    let mut resp =
        crate::upstream::get_with_timeout(&format!("{base}/api/boards"), LIST_TIMEOUT_MS).await?;
    if resp.status_code() != 200 {
        return None;
    }
    let list: serde_json::Value = resp.json().await.ok()?;
    Some(
        list["boards"]
            .as_array()?
            .iter()
            .filter_map(|b| b["id"].as_str().map(str::to_owned))
            .collect(),
    )
}

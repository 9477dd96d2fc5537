//! The hub's fan-out loops (`fanout.js`): the SSE clients of one hub and form as native
//! streams fed the same bytes, and the sends to its hibernatable WebSockets. One call into
//! the runtime per event, whatever the number of clients.

use wasm_bindgen::prelude::*;
use worker::js_sys::Uint8Array;
use worker::web_sys::ReadableStream;

#[wasm_bindgen(module = "/src/fanout.js")]
extern "C" {
    /// The SSE clients of one hub and one form of its snapshot.
    pub(crate) type Audience;

    #[wasm_bindgen(constructor)]
    pub(crate) fn new() -> Audience;

    #[wasm_bindgen(method, getter)]
    pub(crate) fn size(this: &Audience) -> u32;

    /// A new client: `greeting`, then the newest frame unless `current`; the response body.
    #[wasm_bindgen(method, catch)]
    pub(crate) fn join(
        this: &Audience,
        greeting: &Uint8Array,
        current: bool,
    ) -> Result<ReadableStream, JsValue>;

    /// A new snapshot's frame to every client that keeps up (a client behind gets the newest
    /// one once it has drained).
    #[wasm_bindgen(method)]
    pub(crate) fn send(this: &Audience, frame: &Uint8Array);

    /// `ping` to every client unless a frame went out since the last tick; the client count.
    #[wasm_bindgen(method)]
    pub(crate) fn tick(this: &Audience, ping: &Uint8Array) -> u32;

    /// Sends `text` to every hibernatable WebSocket of the object `state` tagged `tag`;
    /// returns how many there were.
    #[wasm_bindgen(js_name = sendToSockets)]
    pub(crate) fn send_to_sockets(state: &JsValue, tag: &str, text: &str) -> u32;

    /// The object's hibernatable WebSockets tagged `tag`, `leaving` not counted.
    #[wasm_bindgen(js_name = countSockets)]
    pub(crate) fn count_sockets(state: &JsValue, tag: &str, leaving: Option<&JsValue>) -> u32;
}

/// Bytes as a buffer of the runtime's own, copied once: a view into wasm memory could move
/// under writes that are still queued.
pub(crate) fn bytes(b: &[u8]) -> Uint8Array {
    Uint8Array::from(b)
}

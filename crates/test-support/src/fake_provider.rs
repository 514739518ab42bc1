//! A fake OpenAI-compatible provider: a real HTTP/1.1 server on loopback,
//! written on raw tokio sockets so it can misbehave in ways a framework
//! would not allow (headers then nothing, cut mid-chunk, TCP reset).
//!
//! Behaviour is chosen by the requested model name:
//!
//! | model                      | behaviour                                          |
//! |----------------------------|----------------------------------------------------|
//! | anything else              | normal answer; `stream: true` → 3 chunks + `[DONE]`  |
//! | `fake-stream-N`            | N content chunks when streaming                    |
//! | `fake-slow-MS`             | answer after MS milliseconds                       |
//! | `fake-hang-headers`        | read the request, never answer                     |
//! | `fake-headers-then-nothing`| send 200 headers, then nothing                     |
//! | `fake-stall-mid`           | 2 chunks (or half the body), then silence          |
//! | `fake-cut-mid`             | 2 chunks (or half the body), then close            |
//! | `fake-malformed`           | a chunk that is not JSON among good ones           |
//! | `fake-no-done`             | finish chunk, no `[DONE]`, connection kept open    |
//! | `fake-429-ra-S`            | 429 with `Retry-After: S`, every time              |
//! | `fake-429-once-ra-S`       | first 429 with `Retry-After: S`, then answers      |
//! | `fake-429`                 | 429 without Retry-After                            |
//! | `fake-500-once`            | first 500, then answers                            |
//! | `fake-503`                 | 503 forever                                        |
//! | `fake-reset`               | TCP reset after reading the request                |
//! | `fake-context-length`      | 400 `context_length_exceeded`                      |
//! | `fake-content-policy`      | 400 `content_policy_violation`                     |
//! | `fake-401`                 | 401 invalid key                                    |
//! | `fake-flap`                | odd attempts 500, even attempts answer             |
//! | `fake-drip-N-MS`           | a healthy stream of N chunks, MS ms apart          |
//! | `fake-tool-call`           | streamed: two tool calls, arguments in pieces      |
//! | `fake-think-MS`            | streamed: 10 `reasoning_content` deltas MS ms apart, then "Hello there" |
//!
//! The `fake-answer` family streams [`CANONICAL`] a word per chunk, and
//! continues a trailing assistant message (prefill) where it ends:
//!
//! | model                      | behaviour                                          |
//! |----------------------------|----------------------------------------------------|
//! | `fake-answer`              | the answer (the rest of it after a prefill)        |
//! | `fake-answer-cut-K`        | K words, then the connection closes                |
//! | `fake-answer-stall-K`      | K words, then silence                              |
//! | `fake-answer-malformed-K`  | K words, a chunk that is not JSON, the rest        |
//! | `fake-answer-nodone-K`     | K words, then a clean end with no finish nor `[DONE]`|
//! | `fake-answer-tool-K`       | K words, half a tool call, then the close          |
//! | `fake-answer-noprefill`    | 400 when the last message is the assistant's       |
//! | `fake-answer-restart`      | ignores a prefill: the whole answer again          |
//! | `fake-answer-overlap`      | continues, repeating the prefill's last two words  |
//! | `fake-answer-drip-MS`      | the answer, each word MS ms after the one before   |
//!
//! Asked for a whole answer, the `fake-answer` family sends [`CANONICAL`]
//! whole (`fake-answer-drip-MS`: when its stream would have ended). A chat
//! stream asked for `stream_options.include_usage` ends with a usage chunk.
//!
//! `/completions`, `/embeddings` and `/responses` answer in their own shape
//! (text chunks; vectors; `response.*` events with no `[DONE]`), with the
//! same faults by model name: errors, slow, hang, reset, and for streams
//! `fake-cut-mid`/`fake-stall-mid` (two pieces, then close/silence) and
//! `fake-stream-N`.
//!
//! `set_down(true)` makes every request a 503 (a provider outage), and
//! counters report attempts per model and connections the client closed
//! while we were still holding them open.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
pub struct FakeState {
    attempts: Mutex<HashMap<String, usize>>,
    requests: AtomicUsize,
    closed_early: AtomicUsize,
    down: AtomicBool,
    last_auth: Mutex<Option<String>>,
    last_body: Mutex<Option<serde_json::Value>>,
}

pub struct FakeProvider {
    pub addr: SocketAddr,
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeProvider {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind fake provider");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FakeState::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve_conn(sock, st).await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
    pub fn attempts(&self, model: &str) -> usize {
        self.state
            .attempts
            .lock()
            .unwrap()
            .get(model)
            .copied()
            .unwrap_or(0)
    }
    pub fn total_requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
    /// Connections the client closed while we were hanging or stalling.
    pub fn closed_early(&self) -> usize {
        self.state.closed_early.load(Ordering::SeqCst)
    }
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
    pub fn last_authorization(&self) -> Option<String> {
        self.state.last_auth.lock().unwrap().clone()
    }
    pub fn last_body(&self) -> Option<serde_json::Value> {
        self.state.last_body.lock().unwrap().clone()
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Read one request; `None` on EOF before a full request.
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Request>> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = head.split("\r\n");
            let mut first = lines.next().unwrap_or("").split_whitespace();
            let method = first.next().unwrap_or("").to_string();
            let path = first.next().unwrap_or("").to_string();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut tmp = [0u8; 8192];
                let n = sock.read(&mut tmp).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Ok(Some(Request {
                method,
                path,
                headers,
                body,
            }));
        }
        let mut tmp = [0u8; 8192];
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// Hold the connection open until the client closes it (or 60 s pass),
/// counting the close: this is how tests see upstream cancellation.
/// The answer of the `fake-answer` family, sent a word per chunk.
pub const CANONICAL: &str =
    "The quick brown fox jumps over the lazy dog, and then it naps in the warm afternoon sun. ";

/// Streams (part of) [`CANONICAL`] for a `fake-answer*` model; `Ok(false)`
/// when the connection must close after it.
async fn answer(
    sock: &mut TcpStream,
    st: &FakeState,
    model: &str,
    request: &serde_json::Value,
) -> std::io::Result<bool> {
    let prefill = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .filter(|m| m["role"] == "assistant")
        .and_then(|m| m["content"].as_str())
        .map(str::to_string);
    let fault = model.strip_prefix("fake-answer").unwrap_or("");
    if fault == "-noprefill" && prefill.is_some() {
        let b = error_body(
            "This model does not support assistant message prefill. The conversation must end with a user message.",
            "invalid_request_error",
            "invalid_request",
        );
        respond(sock, "400 Bad Request", "", &b).await?;
        return Ok(true);
    }
    let text = match prefill.as_deref() {
        Some(p) if fault == "-overlap" && CANONICAL.starts_with(p) => {
            // Back up two words into the prefill.
            let back = p
                .trim_end()
                .rmatch_indices(' ')
                .nth(1)
                .map_or(0, |(i, _)| i + 1);
            &CANONICAL[back..]
        }
        Some(p) if fault != "-restart" && CANONICAL.starts_with(p) => &CANONICAL[p.len()..],
        _ => CANONICAL,
    };
    let (kind, k) = fault
        .trim_start_matches('-')
        .rsplit_once('-')
        .and_then(|(kind, k)| Some((kind, k.parse::<usize>().ok()?)))
        .unwrap_or(("", usize::MAX));
    sock.write_all(SSE_HEAD.as_bytes()).await?;
    write_chunk(
        sock,
        &chunk(
            model,
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        ),
    )
    .await?;
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    for (i, w) in words.iter().enumerate() {
        if kind == "drip" {
            tokio::time::sleep(Duration::from_millis(k as u64)).await;
        } else if i == k {
            match kind {
                "cut" => return Ok(false),
                "stall" => {
                    hold(sock, st).await;
                    return Ok(false);
                }
                "nodone" => {
                    sock.write_all(b"0\r\n\r\n").await?;
                    return Ok(true);
                }
                "tool" => {
                    let call = serde_json::json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "shell", "arguments": "{\"cmd\": "}}]});
                    write_chunk(sock, &chunk(model, call, None)).await?;
                    return Ok(false);
                }
                "malformed" => {
                    write_chunk(sock, "data: {\"id\": \"broken\", \"choices\": [\n\n").await?;
                }
                _ => {}
            }
        }
        write_chunk(sock, &chunk(model, serde_json::json!({"content": w}), None)).await?;
    }
    write_chunk(sock, &chunk(model, serde_json::json!({}), Some("stop"))).await?;
    let usage = serde_json::json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": model, "choices": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": words.len(), "total_tokens": 10 + words.len()}
    });
    write_chunk(sock, &format!("data: {usage}\n\n")).await?;
    write_chunk(sock, "data: [DONE]\n\n").await?;
    sock.write_all(b"0\r\n\r\n").await?;
    Ok(true)
}

async fn hold(sock: &mut TcpStream, st: &FakeState) {
    let mut tmp = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut tmp)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                st.closed_early.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Ok(Ok(_)) => continue,
            Err(_) => return,
        }
    }
}

/// Which API a request is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Chat,
    Completions,
    Embeddings,
    Responses,
}

impl Api {
    fn of(path: &str) -> Option<Api> {
        [
            ("/chat/completions", Api::Chat),
            ("/completions", Api::Completions),
            ("/embeddings", Api::Embeddings),
            ("/responses", Api::Responses),
        ]
        .into_iter()
        .find(|(suffix, _)| path.ends_with(suffix))
        .map(|(_, a)| a)
    }

    /// The whole (non-streamed) answer.
    fn full(self, model: &str) -> String {
        match self {
            Api::Chat => completion(model),
            Api::Completions => serde_json::json!({
                "id": "cmpl-fake", "object": "text_completion", "created": 1_700_000_000, "model": model,
                "choices": [{"index": 0, "text": "Hello from fake", "finish_reason": "stop", "logprobs": null}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
            })
            .to_string(),
            Api::Embeddings => serde_json::json!({
                "object": "list", "model": model,
                "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 1.0]}],
                "usage": {"prompt_tokens": 4, "total_tokens": 4}
            })
            .to_string(),
            Api::Responses => response_object(model, "completed", "Hello from fake").to_string(),
        }
    }

    /// One streamed event of this API's shape: `text` of the answer, or
    /// (`None`) its end.
    fn event(self, model: &str, i: usize, text: Option<&str>) -> String {
        match (self, text) {
            (Api::Chat, Some(t)) => chunk(model, serde_json::json!({"content": t}), None),
            (Api::Chat, None) => chunk(model, serde_json::json!({}), Some("stop")),
            (Api::Completions, t) => {
                let v = serde_json::json!({"id": "cmpl-fake", "object": "text_completion", "created": 1_700_000_000,
                    "model": model, "choices": [{"index": 0, "text": t.unwrap_or(""),
                    "finish_reason": if t.is_none() { Some("stop") } else { None }, "logprobs": null}]});
                format!("data: {v}\n\n")
            }
            (Api::Responses, Some(t)) => {
                let v = serde_json::json!({"type": "response.output_text.delta", "item_id": "msg_fake",
                    "output_index": 0, "content_index": 0, "delta": t, "sequence_number": i + 1});
                format!("event: response.output_text.delta\ndata: {v}\n\n")
            }
            (Api::Responses, None) => {
                let v = serde_json::json!({"type": "response.completed", "sequence_number": i + 1,
                    "response": response_object(model, "completed", "")});
                format!("event: response.completed\ndata: {v}\n\n")
            }
            (Api::Embeddings, _) => unreachable!("embeddings do not stream"),
        }
    }

    /// What a stream says before its first text.
    fn start(self, model: &str) -> String {
        match self {
            Api::Chat => chunk(
                model,
                serde_json::json!({"role": "assistant", "content": ""}),
                None,
            ),
            Api::Completions => self.event(model, 0, Some("")),
            _ => {
                let v = serde_json::json!({"type": "response.created", "sequence_number": 0,
                    "response": response_object(model, "in_progress", "")});
                format!("event: response.created\ndata: {v}\n\n")
            }
        }
    }

    /// Whether the stream ends with `[DONE]` (Responses streams do not).
    fn done(self) -> bool {
        self != Api::Responses
    }
}

fn response_object(model: &str, status: &str, text: &str) -> serde_json::Value {
    let output = if text.is_empty() {
        serde_json::json!([])
    } else {
        serde_json::json!([{"type": "message", "id": "msg_fake", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}])
    };
    serde_json::json!({
        "id": "resp_fake", "object": "response", "created_at": 1_700_000_000, "status": status,
        "model": model, "output": output,
        "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
    })
}

fn completion(model: &str) -> String {
    completion_of(model, "Hello from fake", 5, 3)
}

/// A whole chat answer saying `content`, with its token counts.
fn completion_of(model: &str, content: &str, prompt: usize, completion: usize) -> String {
    serde_json::json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    })
    .to_string()
}

fn chunk(model: &str, delta: serde_json::Value, finish: Option<&str>) -> String {
    let v = serde_json::json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    });
    format!("data: {v}\n\n")
}

async fn respond(
    sock: &mut TcpStream,
    status: &str,
    extra: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n",
        body.len()
    );
    sock.write_all(format!("{head}{body}").as_bytes()).await
}

fn error_body(message: &str, kind: &str, code: &str) -> String {
    serde_json::json!({"error": {"message": message, "type": kind, "code": code}}).to_string()
}

async fn write_chunk(sock: &mut TcpStream, data: &str) -> std::io::Result<()> {
    sock.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
        .await
}

const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

async fn serve_conn(mut sock: TcpStream, st: Arc<FakeState>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut sock, &mut buf).await? {
        st.requests.fetch_add(1, Ordering::SeqCst);
        if req.method == "GET" && req.path.ends_with("/models") {
            let body = r#"{"object":"list","data":[{"id":"fake-ok","object":"model","created":0,"owned_by":"fake"}]}"#;
            respond(&mut sock, "200 OK", "", body).await?;
            continue;
        }
        let api = Api::of(&req.path).filter(|_| req.method == "POST");
        let Some(api) = api else {
            respond(
                &mut sock,
                "404 Not Found",
                "",
                &error_body("no such route", "invalid_request_error", "not_found"),
            )
            .await?;
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let model = v
            .get("model")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_string();
        let stream = v.get("stream").and_then(|s| s.as_bool()).unwrap_or(false);
        *st.last_auth.lock().unwrap() = req
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone());
        *st.last_body.lock().unwrap() = Some(v.clone());
        let n = {
            let mut a = st.attempts.lock().unwrap();
            let e = a.entry(model.clone()).or_insert(0);
            *e += 1;
            *e
        };
        if st.down.load(Ordering::SeqCst) {
            respond(
                &mut sock,
                "503 Service Unavailable",
                "",
                &error_body("down", "server_error", "unavailable"),
            )
            .await?;
            continue;
        }
        let m = model.as_str();
        match m {
            "fake-hang-headers" => {
                hold(&mut sock, &st).await;
                return Ok(());
            }
            "fake-headers-then-nothing" => {
                if stream {
                    sock.write_all(SSE_HEAD.as_bytes()).await?;
                } else {
                    sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n").await?;
                }
                hold(&mut sock, &st).await;
                return Ok(());
            }
            "fake-stall-mid" | "fake-cut-mid" => {
                if stream && api == Api::Chat {
                    sock.write_all(SSE_HEAD.as_bytes()).await?;
                    write_chunk(
                        &mut sock,
                        &chunk(
                            m,
                            serde_json::json!({"role": "assistant", "content": "Hel"}),
                            None,
                        ),
                    )
                    .await?;
                    write_chunk(
                        &mut sock,
                        &chunk(m, serde_json::json!({"content": "lo"}), None),
                    )
                    .await?;
                } else if stream {
                    sock.write_all(SSE_HEAD.as_bytes()).await?;
                    write_chunk(&mut sock, &api.start(m)).await?;
                    write_chunk(&mut sock, &api.event(m, 1, Some("Hel"))).await?;
                    write_chunk(&mut sock, &api.event(m, 2, Some("lo"))).await?;
                } else {
                    let body = api.full(m);
                    let half = &body[..body.len() / 2];
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
                    sock.write_all(format!("{head}{half}").as_bytes()).await?;
                }
                if m == "fake-stall-mid" {
                    hold(&mut sock, &st).await;
                }
                return Ok(());
            }
            _ if m.starts_with("fake-answer") && stream && api == Api::Chat => {
                if !answer(&mut sock, &st, m, &v).await? {
                    return Ok(());
                }
            }
            _ if m.starts_with("fake-think-") && stream && api == Api::Chat => {
                // A reasoning model: ten thoughts MS apart, then the answer.
                let ms: u64 = m["fake-think-".len()..].parse().unwrap_or(100);
                sock.write_all(SSE_HEAD.as_bytes()).await?;
                write_chunk(
                    &mut sock,
                    &chunk(
                        m,
                        serde_json::json!({"role": "assistant", "content": ""}),
                        None,
                    ),
                )
                .await?;
                for i in 0..10 {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let d = serde_json::json!({"reasoning_content": format!("t{i} ")});
                    write_chunk(&mut sock, &chunk(m, d, None)).await?;
                }
                for w in ["Hello", " there"] {
                    write_chunk(
                        &mut sock,
                        &chunk(m, serde_json::json!({"content": w}), None),
                    )
                    .await?;
                }
                write_chunk(&mut sock, &chunk(m, serde_json::json!({}), Some("stop"))).await?;
                write_chunk(&mut sock, "data: [DONE]\n\n").await?;
                sock.write_all(b"0\r\n\r\n").await?;
            }
            "fake-tool-call" if stream && api == Api::Chat => {
                // Two tool calls, their arguments in pieces, interleaved.
                sock.write_all(SSE_HEAD.as_bytes()).await?;
                let deltas = [
                    serde_json::json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "shell", "arguments": ""}}]}),
                    serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"cmd\":"}}]}),
                    serde_json::json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "read", "arguments": "{}"}}]}),
                    serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": " \"ls\"}"}}]}),
                ];
                for d in deltas {
                    write_chunk(&mut sock, &chunk(m, d, None)).await?;
                }
                write_chunk(
                    &mut sock,
                    &chunk(m, serde_json::json!({}), Some("tool_calls")),
                )
                .await?;
                write_chunk(&mut sock, "data: [DONE]\n\n").await?;
                sock.write_all(b"0\r\n\r\n").await?;
            }
            _ if m.starts_with("fake-answer") && api == Api::Chat => {
                // Whole, it comes when the stream would have ended: a
                // provider writing a long answer sends nothing before.
                if let Some(ms) = m
                    .strip_prefix("fake-answer-drip-")
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    let words = CANONICAL.split_inclusive(' ').count() as u64;
                    tokio::time::sleep(Duration::from_millis(ms * words)).await;
                }
                let words = CANONICAL.split_inclusive(' ').count();
                let whole = completion_of(m, CANONICAL, 10, words);
                respond(&mut sock, "200 OK", "", &whole).await?;
            }
            "fake-reset" => {
                #[allow(deprecated)]
                sock.set_linger(Some(Duration::ZERO))?;
                return Ok(());
            }
            "fake-context-length" => {
                let b = error_body(
                    "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
                    "invalid_request_error",
                    "context_length_exceeded",
                );
                respond(&mut sock, "400 Bad Request", "", &b).await?;
            }
            "fake-content-policy" => {
                let b = error_body(
                    "Your request was rejected as a result of our safety system.",
                    "invalid_request_error",
                    "content_policy_violation",
                );
                respond(&mut sock, "400 Bad Request", "", &b).await?;
            }
            "fake-401" => {
                // Real providers echo part of the key; the gateway must not pass it on.
                let auth = st.last_auth.lock().unwrap().clone().unwrap_or_default();
                let b = error_body(
                    &format!("Invalid API Key: {auth}"),
                    "invalid_request_error",
                    "invalid_api_key",
                );
                respond(&mut sock, "401 Unauthorized", "", &b).await?;
            }
            "fake-429" => {
                respond(
                    &mut sock,
                    "429 Too Many Requests",
                    "",
                    &error_body(
                        "Rate limit reached",
                        "rate_limit_error",
                        "rate_limit_exceeded",
                    ),
                )
                .await?;
            }
            "fake-503" => {
                respond(
                    &mut sock,
                    "503 Service Unavailable",
                    "",
                    &error_body("overloaded", "server_error", "overloaded"),
                )
                .await?;
            }
            "fake-500-once" if n == 1 => {
                respond(
                    &mut sock,
                    "500 Internal Server Error",
                    "",
                    &error_body("boom", "server_error", "internal"),
                )
                .await?;
            }
            "fake-flap" if n % 2 == 1 => {
                respond(
                    &mut sock,
                    "500 Internal Server Error",
                    "",
                    &error_body("flap", "server_error", "internal"),
                )
                .await?;
            }
            _ if m.starts_with("fake-429-once-ra-") && n == 1 => {
                let s = &m["fake-429-once-ra-".len()..];
                respond(
                    &mut sock,
                    "429 Too Many Requests",
                    &format!("retry-after: {s}\r\n"),
                    &error_body("slow down", "rate_limit_error", "rate_limit_exceeded"),
                )
                .await?;
            }
            _ if m.starts_with("fake-429-ra-") => {
                let s = &m["fake-429-ra-".len()..];
                respond(
                    &mut sock,
                    "429 Too Many Requests",
                    &format!("retry-after: {s}\r\n"),
                    &error_body("slow down", "rate_limit_error", "rate_limit_exceeded"),
                )
                .await?;
            }
            _ => {
                if let Some(ms) = m
                    .strip_prefix("fake-slow-")
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                if !stream {
                    respond(&mut sock, "200 OK", "", &api.full(m)).await?;
                    continue;
                }
                // `fake-drip-N-MS`: a healthy stream of N chunks, MS apart.
                let drip = m.strip_prefix("fake-drip-").and_then(|s| {
                    let (n, ms) = s.split_once('-')?;
                    Some((n.parse::<usize>().ok()?, ms.parse::<u64>().ok()?))
                });
                let chunks: usize = m
                    .strip_prefix("fake-stream-")
                    .and_then(|s| s.parse().ok())
                    .or(drip.map(|(n, _)| n))
                    .unwrap_or(3);
                sock.write_all(SSE_HEAD.as_bytes()).await?;
                write_chunk(&mut sock, &api.start(m)).await?;
                for i in 0..chunks {
                    if let Some((_, ms)) = drip {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    write_chunk(&mut sock, &api.event(m, i + 1, Some(&format!("c{i} ")))).await?;
                    if m == "fake-malformed" && i == 0 {
                        write_chunk(&mut sock, "data: {\"id\": \"broken\", \"choices\": [\n\n")
                            .await?;
                    }
                }
                write_chunk(&mut sock, &api.event(m, chunks + 1, None)).await?;
                if api == Api::Chat && v["stream_options"]["include_usage"] == true {
                    let usage = serde_json::json!({
                        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
                        "model": m, "choices": [],
                        "usage": {"prompt_tokens": 5, "completion_tokens": chunks, "total_tokens": 5 + chunks}
                    });
                    write_chunk(&mut sock, &format!("data: {usage}\n\n")).await?;
                }
                if m == "fake-no-done" {
                    hold(&mut sock, &st).await;
                    return Ok(());
                }
                if api.done() {
                    write_chunk(&mut sock, "data: [DONE]\n\n").await?;
                }
                sock.write_all(b"0\r\n\r\n").await?;
            }
        }
    }
    Ok(())
}

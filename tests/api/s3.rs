//! Documents in an S3-compatible bucket (`storage.backend = "s3"`), against
//! a real S3 API: moto in server mode, started by each test on its own
//! port. Uploads stream (a file past one part goes multipart), a cut upload
//! leaves no object nor any incomplete multipart upload, downloads stream
//! with `Range` and `ETag`, verify re-hashes the object, delete removes it.
//! Then two `serve` processes and a worker on one PostgreSQL database and
//! one bucket, with no disk shared (issue 16).
//!
//! moto comes from `MOTO_SERVER` (the pinned copy `make test` installs), or
//! `moto_server` on `PATH`. Without either the tests say so and pass, unless
//! `AUTODOCS_REQUIRE_S3=1` (as `make test` sets) makes that a failure.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;
use crate::jobs::{FileServer, REPORT, Reply, act_ok, await_status, mission_with_steps};

const DOCUMENTS: &str = "/api/documents/";
const DEADLINE: Duration = Duration::from_secs(60);

/// A moto S3 server, killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> Option<String> {
    if let Ok(path) = std::env::var("MOTO_SERVER")
        && !path.trim().is_empty()
    {
        return Some(path);
    }
    let on_path = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    on_path.then(|| "moto_server".to_owned())
}

impl Moto {
    /// Starts moto on a free port; `None` (the test is skipped) when there
    /// is no moto and nothing requires one.
    async fn start() -> Option<Moto> {
        let Some(binary) = moto_binary() else {
            assert!(
                std::env::var("AUTODOCS_REQUIRE_S3").is_err(),
                "AUTODOCS_REQUIRE_S3 is set but there is no moto: set MOTO_SERVER or \
                 put moto_server on PATH (`make test` installs tests/s3/requirements.txt)"
            );
            println!("skipped: no moto_server (set MOTO_SERVER; `make test` installs it)");
            return None;
        };
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("local address").port()
        };
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let client = plain_client();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if client
                .get(format!("{}/", moto.endpoint))
                .send()
                .await
                .is_ok()
            {
                return Some(moto);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto did not answer on {} within 30 s",
                moto.endpoint
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new, empty bucket.
    async fn bucket(&self) -> String {
        let name = format!("autodocs-{}", uuid::Uuid::new_v4().simple());
        let r = plain_client()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .expect("create a bucket");
        assert!(r.status().is_success(), "create bucket: {}", r.status());
        name
    }

    /// The keys in `bucket` under `prefix`.
    async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let body = plain_client()
            .get(format!(
                "{}/{bucket}?list-type=2&prefix={prefix}",
                self.endpoint
            ))
            .send()
            .await
            .expect("list a bucket")
            .text()
            .await
            .expect("a listing");
        let mut keys = elements(&body, "Key");
        keys.sort();
        keys
    }

    /// Multipart uploads started and neither completed nor aborted.
    async fn incomplete_uploads(&self, bucket: &str) -> Vec<String> {
        let body = plain_client()
            .get(format!("{}/{bucket}?uploads", self.endpoint))
            .send()
            .await
            .expect("list multipart uploads")
            .text()
            .await
            .expect("a listing");
        elements(&body, "UploadId")
    }

    /// Overwrites an object behind the server's back.
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        let r = plain_client()
            .put(format!("{}/{bucket}/{key}", self.endpoint))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .expect("put an object");
        assert!(r.status().is_success(), "put object: {}", r.status());
    }

    /// The settings that put a server's documents in `bucket` under `prefix`.
    fn settings<'a>(&'a self, bucket: &'a str, prefix: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("AUTODOCS__STORAGE__BACKEND", "s3"),
            ("AUTODOCS__STORAGE__S3__BUCKET", bucket),
            ("AUTODOCS__STORAGE__S3__ENDPOINT", &self.endpoint),
            ("AUTODOCS__STORAGE__S3__PREFIX", prefix),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ]
    }
}

/// A client moto takes for the `testing` key: moto checks who asks, not
/// the signature, and refuses anonymous reads of objects.
fn plain_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        reqwest::header::HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=0",
        ),
    );
    headers.insert(
        "x-amz-content-sha256",
        reqwest::header::HeaderValue::from_static("UNSIGNED-PAYLOAD"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// The text of every `<name>…</name>` element of an XML answer.
fn elements(xml: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next().map(str::to_owned))
        .collect()
}

fn multipart(filename: &str, content_type: &str, body: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("autodocs-s3-{}", uuid::Uuid::new_v4().simple());
    let mut out = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

async fn upload(app: &TestApp, user: &Registered, filename: &str, body: &[u8]) -> Value {
    let (content_type, form) = multipart(filename, "text/plain", body);
    let url = app.url(DOCUMENTS);
    let request = app
        .client()
        .post(&url)
        .bearer_auth(&user.access)
        .header("content-type", content_type)
        .body(form);
    let r = app.send(&Method::POST, &url, request).await;
    r.assert_status(201);
    r.body.clone()
}

async fn download(
    app: &TestApp,
    user: &Registered,
    id: i64,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = app
        .client()
        .get(app.url(&format!("{DOCUMENTS}{id}/download/")))
        .bearer_auth(&user.access);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("download");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("download body").to_vec();
    (status, headers, bytes)
}

async fn verify(app: &TestApp, user: &Registered, id: i64) -> Value {
    let r = app
        .post_json(
            &format!("{DOCUMENTS}{id}/verify/"),
            &json!({}),
            Some(&user.access),
        )
        .await;
    r.assert_status(200);
    r.body.clone()
}

fn id(document: &Value) -> i64 {
    document["id"].as_i64().expect("an id")
}

fn hex_sha256(bytes: &[u8]) -> String {
    sha256(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` bytes of plain text, different at every offset that matters.
fn text_of(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut line = 0u64;
    while out.len() < n {
        out.extend_from_slice(format!("line {line:08} of a large statement\n").as_bytes());
        line += 1;
    }
    out.truncate(n);
    out
}

async fn eventually_true(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

backend_custom_tests!(s3_documents_round_trip);

/// Upload (one PUT and multipart), download whole and by range, ETag,
/// verify (and a tampered object rejected), delete; nothing on local disk.
async fn s3_documents_round_trip(backend: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let bucket = moto.bucket().await;
    let app = TestApp::spawn_with_env(backend, &moto.settings(&bucket, "tenant/a")).await;
    let anna = app.register("anna").await;

    let small = b"Invoice 2026-001\nTotal: 120 EUR\n".to_vec();
    let small_doc = upload(&app, &anna, "invoice.txt", &small).await;
    // Past two parts: a multipart upload of three.
    let large = text_of(12 * 1024 * 1024 + 123);
    let large_doc = upload(&app, &anna, "statement.txt", &large).await;
    assert_eq!(large_doc["size"], large.len(), "{large_doc}");
    assert_eq!(large_doc["sha256"], hex_sha256(&large), "{large_doc}");
    assert_eq!(small_doc["sha256"], hex_sha256(&small), "{small_doc}");

    let stored = moto.keys(&bucket, "tenant/a/documents/").await;
    assert_eq!(stored.len(), 2, "two objects under the prefix: {stored:?}");
    let (moto_ref, bucket_ref) = (&moto, &bucket);
    eventually_true(
        "the multipart upload's staging copy is removed",
        async || moto_ref.keys(bucket_ref, "tenant/a/tmp/").await.is_empty(),
    )
    .await;
    assert!(
        moto.incomplete_uploads(&bucket).await.is_empty(),
        "no multipart upload left open"
    );
    assert!(
        files_in(&media(&app).join("documents")).is_empty(),
        "nothing stored on the server's disk"
    );

    // Whole, by range (across a part and a read-chunk boundary), ETag.
    let (status, headers, bytes) = download(&app, &anna, id(&large_doc), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(bytes.len(), large.len());
    assert!(bytes == large, "the downloaded bytes are the uploaded ones");
    let etag = headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("an ETag")
        .to_owned();
    let from = 5 * 1024 * 1024 - 10;
    let range = format!("bytes={from}-{}", from + 2 * 1024 * 1024);
    let (status, headers, bytes) =
        download(&app, &anna, id(&large_doc), &[("range", &range)]).await;
    assert_eq!(status, 206, "{headers:?}");
    assert!(
        bytes == large[from..=from + 2 * 1024 * 1024],
        "the range is the uploaded bytes"
    );
    let (status, _, bytes) = download(&app, &anna, id(&large_doc), &[("range", "bytes=-7")]).await;
    assert_eq!(status, 206);
    assert_eq!(bytes, &large[large.len() - 7..]);
    let (status, _, _) = download(&app, &anna, id(&large_doc), &[("if-none-match", &etag)]).await;
    assert_eq!(status, 304);
    let (status, _, bytes) = download(&app, &anna, id(&small_doc), &[]).await;
    assert_eq!((status, bytes), (200, small.clone()));

    // Verify reads the object again; a changed object is caught.
    assert_eq!(
        verify(&app, &anna, id(&large_doc)).await["status"],
        "verified"
    );
    let mut altered = small.clone();
    altered[3] ^= 0x20;
    let mut replaced = 0;
    for key in moto.keys(&bucket, "tenant/a/documents/").await {
        let current = plain_client()
            .get(format!("{}/{bucket}/{key}", moto.endpoint))
            .send()
            .await
            .expect("get an object")
            .bytes()
            .await
            .expect("an object's bytes");
        if current.as_ref() == small.as_slice() {
            moto.put(&bucket, &key, altered.clone()).await;
            replaced += 1;
        }
    }
    assert_eq!(replaced, 1, "the small document's object was found");
    let rejected = verify(&app, &anna, id(&small_doc)).await;
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    assert_eq!(rejected["verification_error"], "Checksum mismatch.");

    // Delete removes the object.
    app.delete(
        &format!("{DOCUMENTS}{}/", id(&small_doc)),
        Some(&anna.access),
    )
    .await
    .assert_status(204);
    let left = moto.keys(&bucket, "tenant/a/documents/").await;
    assert_eq!(left.len(), 1, "one object left: {left:?}");

    // A refused file (empty) leaves no object.
    let (content_type, form) = multipart("empty.txt", "text/plain", b"");
    let url = app.url(DOCUMENTS);
    let request = app
        .client()
        .post(&url)
        .bearer_auth(&anna.access)
        .header("content-type", content_type)
        .body(form);
    app.send(&Method::POST, &url, request)
        .await
        .assert_status(400);
    eventually_true("the refused upload's object is deleted", async || {
        moto_ref.keys(bucket_ref, "tenant/a/documents/").await.len() == 1
    })
    .await;

    // An upload cut after its first part: the multipart upload is aborted
    // and no object appears.
    let connection = start_upload(&app, &anna, 7 * 1024 * 1024).await;
    eventually_true("the upload goes multipart past one part", async || {
        moto_ref.incomplete_uploads(bucket_ref).await.len() == 1
    })
    .await;
    let _ = connection.shutdown(std::net::Shutdown::Both);
    drop(connection);
    eventually_true("the cut upload is aborted", async || {
        moto_ref.incomplete_uploads(bucket_ref).await.is_empty()
    })
    .await;
    assert_eq!(moto.keys(&bucket, "tenant/a/documents/").await.len(), 1);

    // The storage is marked as this database's, under the prefix only.
    let marker = moto.keys(&bucket, "tenant/a/.autodocs-instance").await;
    assert_eq!(marker.len(), 1, "the marker object: {marker:?}");
    assert!(moto.keys(&bucket, "documents/").await.is_empty());

    let cpu = server_cpu_share(&app, Duration::from_secs(2)).await;
    assert!(
        cpu < 0.05,
        "the server settles after the uploads: {cpu:.3} of a core"
    );
}

/// Sends `sent` bytes of a larger file and returns the open connection
/// (dropping it cuts the upload).
async fn start_upload(app: &TestApp, user: &Registered, sent: usize) -> TcpStream {
    let address = app.base_url.trim_start_matches("http://").to_owned();
    let token = user.access.clone();
    tokio::task::spawn_blocking(move || {
        let (content_type, form) = multipart("cut.txt", "text/plain", &text_of(sent * 2));
        let mut stream = TcpStream::connect(&address).expect("connect");
        let head = format!(
            "POST {DOCUMENTS} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            form.len()
        );
        stream.write_all(head.as_bytes()).expect("send the head");
        stream
            .write_all(&form[..sent])
            .expect("send part of the body");
        stream.flush().expect("flush");
        stream
    })
    .await
    .expect("the started upload")
}

/// Two `serve` processes and a worker on one PostgreSQL database and one
/// bucket, each with its own (empty) media folder: an upload on one is
/// downloaded and verified on the other, whose socket sees its events; a
/// `fetch_url` step is performed by the worker and its document read from
/// both servers.
#[tokio::test]
async fn two_servers_and_a_worker_share_one_bucket() {
    if !postgres_configured() {
        println!("skipped: TEST_DATABASE_URL not set (PostgreSQL only)");
        return;
    }
    let Some(moto) = Moto::start().await else {
        return;
    };
    let bucket = moto.bucket().await;
    let mut settings = moto.settings(&bucket, "");
    settings.push(("AUTODOCS__JOBS__RUN_IN_SERVE", "false"));
    settings.push(("AUTODOCS__JOBS__ALLOW_PRIVATE_NETWORKS", "true"));
    let first = TestApp::spawn_with_env(Backend::Postgres, &settings).await;
    let second = first.spawn_machine(&[]).await;
    let worker = first.spawn_worker(&[]).await;
    let anna = first.register("anna").await;

    // The second server's socket sees what happens on the first.
    let url = format!(
        "{}/ws/events/?token={}",
        second.base_url.replacen("http://", "ws://", 1),
        anna.access
    );
    let (mut socket, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(url))
        .await
        .expect("a WebSocket handshake in time")
        .expect("a WebSocket on the second server");

    let body = text_of(6 * 1024 * 1024);
    let document = upload(&first, &anna, "ledger.txt", &body).await;
    let uploaded = id(&document);
    next_frame_with(&mut socket, "document_uploaded", uploaded).await;

    let (status, _, bytes) = download(&second, &anna, uploaded, &[]).await;
    assert_eq!(status, 200);
    assert!(bytes == body, "the second server serves the first's upload");
    assert_eq!(verify(&second, &anna, uploaded).await["status"], "verified");
    next_frame_with(&mut socket, "document_verified", uploaded).await;

    // A fetch_url step: neither server runs jobs, the worker does.
    let files = FileServer::start(|_| Reply::Full);
    let (mission, _) = mission_with_steps(
        &second,
        &anna,
        "Fetch",
        &[json!({"kind": "fetch_url", "url": files.url("/report")})],
    )
    .await;
    act_ok(&first, &anna, mission, "start", "in_progress").await;
    let detail = await_status(&second, &anna, mission, "completed", DEADLINE).await;
    let fetched = detail["documents"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("a fetched document: {detail}"));
    for server in [&first, &second] {
        let (status, _, bytes) = download(server, &anna, fetched, &[]).await;
        assert_eq!((status, bytes.as_slice()), (200, REPORT));
    }
    assert_eq!(files.requests().len(), 1, "fetched once");

    assert_eq!(moto.keys(&bucket, "documents/").await.len(), 2);
    for server in [&first, &second] {
        assert!(
            files_in(&media(server).join("documents")).is_empty(),
            "no document on a server's own disk"
        );
    }
    drop(worker);
    drop(second);
}

/// Reads frames until an `activity.created` of `kind` about `document`.
async fn next_frame_with<S>(socket: &mut S, kind: &str, document: i64)
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} frame for document {document}"))
            .expect("the socket stays open")
            .expect("a frame");
        let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(text.as_str()).expect("a JSON frame");
        let data = &frame["data"];
        if frame["event"] == "activity.created"
            && data["type"] == kind
            && data["document"] == json!(document)
        {
            return;
        }
    }
}

/// The port's sweep half on a bucket: stale keys, quarantine (dated from
/// the move), expired quarantine, purge; the marker; foreign keys ignored.
#[tokio::test]
async fn s3_storage_sweeps_and_marks() {
    use autodocs_domain::ports::FileStorage;
    use autodocs_storage::s3::{S3Config, S3Credentials, S3Storage};

    let Some(moto) = Moto::start().await else {
        return;
    };
    let bucket = moto.bucket().await;
    let endpoint = moto.endpoint.clone();
    let bucket_name = bucket.clone();
    let (kept, orphan) = tokio::task::spawn_blocking(move || {
        let storage = S3Storage::connect(&S3Config {
            bucket: bucket_name,
            endpoint: Some(endpoint),
            region: "us-east-1".to_owned(),
            prefix: "sweep".to_owned(),
            credentials: Some(S3Credentials {
                access_key_id: "testing".to_owned(),
                secret_access_key: "testing".to_owned(),
            }),
        })
        .expect("a client");
        storage.probe().expect("the bucket is usable");
        let store = |bytes: &[u8]| {
            let mut sink = storage.begin_upload(1024).expect("begin");
            sink.write(bytes).expect("write");
            sink.finish().expect("finish").persist().expect("persist")
        };
        let kept = store(b"kept");
        let orphan = store(b"orphan");
        // Fresh files are not stale; everything is at age zero.
        assert!(
            storage
                .stale_keys(Duration::from_secs(3600))
                .expect("list")
                .is_empty()
        );
        let mut stale = storage.stale_keys(Duration::ZERO).expect("list");
        stale.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let mut both = vec![kept.clone(), orphan.clone()];
        both.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(stale, both);

        assert!(storage.quarantine(&orphan).expect("quarantine"));
        assert!(
            !storage.quarantine(&orphan).expect("again"),
            "already moved"
        );
        assert!(storage.open(&orphan).expect("open").is_none());
        assert!(
            storage
                .expired_quarantine(Duration::from_secs(3600))
                .expect("list")
                .is_empty(),
            "quarantine age starts at the move"
        );
        assert_eq!(
            storage.expired_quarantine(Duration::ZERO).expect("list"),
            vec![orphan.clone()]
        );
        assert!(storage.purge_quarantined(&orphan).expect("purge"));
        assert!(!storage.purge_quarantined(&orphan).expect("purge again"));
        assert!(!storage.delete(&orphan).expect("delete a gone key"));

        assert_eq!(storage.read_marker().expect("marker"), None);
        assert_eq!(
            storage
                .sweep_temporary(Duration::ZERO, false)
                .expect("sweep"),
            0
        );

        // A multipart upload completed but never persisted (the process
        // died in between) is a dead temporary object.
        let mut sink = storage.begin_upload(64 << 20).expect("begin");
        sink.write(&vec![b'a'; 6 << 20]).expect("write");
        std::mem::forget(sink.finish().expect("finish"));
        let sweep = |min_age, dry_run| storage.sweep_temporary(min_age, dry_run).expect("sweep");
        assert_eq!(
            sweep(Duration::from_secs(3600), false),
            0,
            "a fresh one is spared"
        );
        assert_eq!(sweep(Duration::ZERO, true), 1, "dry run");
        assert_eq!(sweep(Duration::ZERO, false), 1);
        assert_eq!(sweep(Duration::ZERO, false), 0, "already gone");

        // A refused upload past its limit leaves nothing.
        let mut sink = storage.begin_upload(4).expect("begin");
        assert!(sink.write(b"too long").is_err());
        drop(sink);
        (kept, orphan)
    })
    .await
    .expect("the storage calls");
    let keys = moto.keys(&bucket, "sweep/").await;
    assert_eq!(keys, vec![format!("sweep/documents/{}", kept.as_str())]);
    let _ = orphan;
    // A foreign object under the prefix is never taken for a stored file.
    moto.put(&bucket, "sweep/documents/not-a-key", b"x".to_vec())
        .await;
    let endpoint = moto.endpoint.clone();
    let bucket_name = bucket.clone();
    let stale = tokio::task::spawn_blocking(move || {
        S3Storage::connect(&S3Config {
            bucket: bucket_name,
            endpoint: Some(endpoint),
            region: "us-east-1".to_owned(),
            prefix: "sweep".to_owned(),
            credentials: Some(S3Credentials {
                access_key_id: "testing".to_owned(),
                secret_access_key: "testing".to_owned(),
            }),
        })
        .expect("a client")
        .stale_keys(Duration::ZERO)
        .expect("list")
    })
    .await
    .expect("the storage calls");
    assert_eq!(stale, vec![kept]);
}

/// `check` and `serve` on the bucket: a missing bucket name or a bad
/// endpoint is refused by the settings; a bucket that does not exist, or
/// an endpoint nobody answers, fails `check` (one line, non-zero) and keeps
/// `serve` from listening; a usable bucket passes and keeps nothing.
#[tokio::test]
async fn check_and_serve_refuse_an_unusable_bucket() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let bucket = moto.bucket().await;
    let db = TestDb::new(Backend::Sqlite);
    let with = |set: &[(&str, &str)]| {
        let mut env = base_env(&db, &random_secret());
        adjust_env(&mut env, set, &[]);
        env
    };
    let one_line_failure = |out: &std::process::Output, needle: &str| {
        assert!(!out.status.success(), "must fail\n{}", describe(out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(needle),
            "mentions {needle:?}\n{}",
            describe(out)
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    };

    let good = moto.settings(&bucket, "checked");
    let out = run_cli(&["check"], &with(&good)).await;
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("Bucket s3://{bucket}/checked")) && stdout.contains("usable"),
        "{}",
        describe(&out)
    );
    assert!(
        moto.keys(&bucket, "").await.is_empty(),
        "the probe is removed"
    );

    for (key, value, needle) in [
        ("AUTODOCS__STORAGE__S3__BUCKET", "", "storage.s3.bucket"),
        (
            "AUTODOCS__STORAGE__S3__ENDPOINT",
            "127.0.0.1:9000",
            "storage.s3.endpoint",
        ),
        (
            "AUTODOCS__UPLOADS__MAX_BYTES",
            "6000000000",
            "uploads.max_bytes",
        ),
        (
            "AUTODOCS__STORAGE__S3__BUCKET",
            "no-such-bucket",
            "no-such-bucket",
        ),
    ] {
        let mut refused = good.clone();
        refused.push((key, value));
        one_line_failure(&run_cli(&["check"], &with(&refused)).await, needle);
    }
    let mut missing = good.clone();
    missing.push(("AUTODOCS__STORAGE__S3__BUCKET", "no-such-bucket"));

    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        format!("http://{}", probe.local_addr().expect("address"))
    };
    let mut unreachable = good.clone();
    unreachable.push(("AUTODOCS__STORAGE__S3__ENDPOINT", &closed));
    let started = std::time::Instant::now();
    one_line_failure(&run_cli(&["check"], &with(&unreachable)).await, "bucket");
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "an unreachable store fails in bounded time: {:?}",
        started.elapsed()
    );

    // `serve` refuses to start on the missing bucket.
    let mut cmd = autodocs_command(&with(&missing));
    cmd.arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let child = cmd.spawn().expect("spawn autodocs serve");
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("`serve` on a missing bucket must exit, not run")
        .expect("wait for autodocs serve");
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-bucket"),
        "{}",
        describe(&out)
    );
}

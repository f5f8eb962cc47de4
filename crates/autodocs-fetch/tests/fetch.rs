//! `HttpFetcher` against a tiny HTTP server on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use autodocs_domain::plan_step::HttpUrl;
use autodocs_domain::ports::{
    FetchError, Fetched, StagedUpload, StorageError, UploadError, UploadSink, UrlFetcher,
};
use autodocs_fetch::{CHUNK_SIZE, FetchSettings, HttpFetcher};

/// What the server sends back for one request.
enum Reply {
    /// These bytes, then close.
    Bytes(Vec<u8>),
    /// These bytes, then a pause before closing.
    Stall(Vec<u8>, Duration),
}

struct TestServer {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    fn start(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        {
            let connections = Arc::clone(&connections);
            let requests = Arc::clone(&requests);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let requests = Arc::clone(&requests);
                    let handler = Arc::clone(&handler);
                    thread::spawn(move || answer(stream, &*handler, &requests));
                }
            });
        }
        Self {
            port,
            connections,
            requests,
        }
    }

    fn url(&self, path: &str) -> HttpUrl {
        HttpUrl::parse(&format!("http://127.0.0.1:{}{path}", self.port)).expect("a valid URL")
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

fn answer(
    mut stream: TcpStream,
    handler: &(dyn Fn(&str) -> Reply + Send + Sync),
    requests: &Mutex<Vec<String>>,
) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    requests.lock().expect("lock").push(head);
    match handler(&path) {
        Reply::Bytes(bytes) => {
            let _ = stream.write_all(&bytes);
        }
        Reply::Stall(bytes, pause) => {
            let _ = stream.write_all(&bytes);
            let _ = stream.flush();
            thread::sleep(pause);
        }
    }
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut bytes = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in headers {
        bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(body);
    Reply::Bytes(bytes)
}

fn redirect(location: &str) -> Reply {
    response("302 Found", &[("Location", location)], b"")
}

/// A `Vec`-backed sink that refuses more than `limit` bytes.
struct VecSink {
    data: Vec<u8>,
    chunks: usize,
    largest_chunk: usize,
    limit: u64,
}

impl VecSink {
    fn new(limit: u64) -> Self {
        Self {
            data: Vec::new(),
            chunks: 0,
            largest_chunk: 0,
            limit,
        }
    }
}

impl UploadSink for VecSink {
    fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        if (self.data.len() + chunk.len()) as u64 > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit });
        }
        self.data.extend_from_slice(chunk);
        self.chunks += 1;
        self.largest_chunk = self.largest_chunk.max(chunk.len());
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Box<dyn StagedUpload>, UploadError> {
        Err(UploadError::Storage(StorageError::Io(
            "the test sink keeps nothing".to_owned(),
        )))
    }
}

fn permissive() -> HttpFetcher {
    HttpFetcher::new(FetchSettings {
        allow_private_networks: true,
        ..FetchSettings::default()
    })
}

fn guarded() -> HttpFetcher {
    HttpFetcher::new(FetchSettings::default())
}

fn body_of(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn streams_a_200_body_whole_into_the_sink() {
    let body = body_of(300_000);
    let served = body.clone();
    let server = TestServer::start(move |path| match path {
        "/files/tax%20form.pdf" => {
            response("200 OK", &[("Content-Type", "application/pdf")], &served)
        }
        _ => response("404 Not Found", &[], b""),
    });
    let mut sink = VecSink::new(1_000_000);
    let fetched = permissive()
        .fetch(&server.url("/files/tax%20form.pdf"), &mut sink)
        .expect("the fetch succeeds");
    assert_eq!(
        fetched,
        Fetched {
            filename: "tax form.pdf".to_owned()
        }
    );
    assert_eq!(sink.data.len(), body.len());
    assert!(sink.data == body, "the body arrives unchanged");
    assert!(sink.chunks > 1, "the body is streamed in several chunks");
    assert!(sink.largest_chunk <= CHUNK_SIZE);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].starts_with("GET /files/tax%20form.pdf HTTP/1.1\r\n"));
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains("user-agent: autodocs/"),
        "{}",
        requests[0]
    );
}

#[test]
fn reads_a_body_without_length_until_close_and_names_it_from_content_disposition() {
    let server = TestServer::start(|_| {
        Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\
              Content-Disposition: attachment; filename=\"fallback.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n\
              \r\nhello, until close"
                .to_vec(),
        )
    });
    let mut sink = VecSink::new(1000);
    let fetched = permissive()
        .fetch(&server.url("/download?id=3"), &mut sink)
        .expect("the fetch succeeds");
    assert_eq!(fetched.filename, "résumé.pdf");
    assert_eq!(sink.data, b"hello, until close");
}

#[test]
fn names_the_file_download_when_nothing_suggests_a_name() {
    let server = TestServer::start(|_| response("200 OK", &[], b"x"));
    let mut sink = VecSink::new(10);
    let fetched = permissive()
        .fetch(&server.url("/"), &mut sink)
        .expect("the fetch succeeds");
    assert_eq!(fetched.filename, "download");
}

#[test]
fn a_404_fails() {
    let server = TestServer::start(|_| response("404 Not Found", &[], b"no such file"));
    let mut sink = VecSink::new(1000);
    let url = server.url("/missing.pdf");
    let error = permissive()
        .fetch(&url, &mut sink)
        .expect_err("a 404 fails");
    assert_eq!(
        error,
        FetchError::Status {
            status: 404,
            detail: format!("HTTP 404 from {}", url.as_str())
        }
    );
    assert_eq!(
        error.to_string(),
        "the server answered with an error (HTTP 404)"
    );
    assert!(sink.data.is_empty(), "an error body is not kept");
}

#[test]
fn a_500_fails() {
    let server = TestServer::start(|_| response("500 Internal Server Error", &[], b""));
    let mut sink = VecSink::new(1000);
    let error = permissive()
        .fetch(&server.url("/x"), &mut sink)
        .expect_err("a 500 fails");
    assert!(
        matches!(&error, FetchError::Status { status: 500, detail } if detail.starts_with("HTTP 500 from ")),
        "{error:?}"
    );
}

#[test]
fn a_body_over_the_sink_limit_is_too_large() {
    let server = TestServer::start(|_| response("200 OK", &[], &body_of(200_000)));
    let mut sink = VecSink::new(100_000);
    let error = permissive()
        .fetch(&server.url("/big.bin"), &mut sink)
        .expect_err("too large");
    assert_eq!(
        error,
        FetchError::Upload(UploadError::TooLarge { limit: 100_000 })
    );
    assert!(sink.data.len() <= 100_000);
}

fn hop_server() -> TestServer {
    TestServer::start(|path| {
        if let Some(left) = path.strip_prefix("/hop/") {
            let left: u32 = left.parse().unwrap_or(0);
            if left <= 1 {
                redirect("/final/statement.pdf")
            } else {
                redirect(&format!("/hop/{}", left - 1))
            }
        } else if path == "/final/statement.pdf" {
            response("200 OK", &[], b"the end")
        } else {
            response("404 Not Found", &[], b"")
        }
    })
}

#[test]
fn follows_up_to_five_redirects() {
    let server = hop_server();
    let mut sink = VecSink::new(1000);
    let fetched = permissive()
        .fetch(&server.url("/hop/5"), &mut sink)
        .expect("five redirects are followed");
    assert_eq!(fetched.filename, "statement.pdf");
    assert_eq!(sink.data, b"the end");
    assert_eq!(server.requests().len(), 6);
}

#[test]
fn a_sixth_redirect_fails() {
    let server = hop_server();
    let mut sink = VecSink::new(1000);
    let error = permissive()
        .fetch(&server.url("/hop/6"), &mut sink)
        .expect_err("six redirects are too many");
    assert!(
        matches!(&error, FetchError::TooManyRedirects { detail } if detail.contains("too many redirects (more than 5)")),
        "{error:?}"
    );
    assert_eq!(
        server.requests().len(),
        6,
        "the sixth target is not requested"
    );
    assert!(sink.data.is_empty());
}

#[test]
fn the_redirect_limit_is_configurable() {
    let server = hop_server();
    let fetcher = HttpFetcher::new(FetchSettings {
        allow_private_networks: true,
        max_redirects: 0,
        ..FetchSettings::default()
    });
    let error = fetcher
        .fetch(&server.url("/hop/1"), &mut VecSink::new(1000))
        .expect_err("no redirect allowed");
    assert!(
        matches!(error, FetchError::TooManyRedirects { .. }),
        "{error:?}"
    );
}

#[test]
fn a_redirect_to_another_scheme_is_refused() {
    let server = TestServer::start(|_| redirect("ftp://example.com/file.pdf"));
    let error = permissive()
        .fetch(&server.url("/x"), &mut VecSink::new(1000))
        .expect_err("ftp is not followed");
    assert!(
        matches!(&error, FetchError::NotAllowed { detail } if detail.contains("non-http(s)")),
        "{error:?}"
    );
}

#[test]
fn the_total_timeout_covers_the_body() {
    let server = TestServer::start(|_| {
        Reply::Stall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nten bytes."
                .to_vec(),
            Duration::from_secs(5),
        )
    });
    let fetcher = HttpFetcher::new(FetchSettings {
        allow_private_networks: true,
        total_timeout: Duration::from_millis(500),
        ..FetchSettings::default()
    });
    let mut sink = VecSink::new(1000);
    let error = fetcher
        .fetch(&server.url("/slow"), &mut sink)
        .expect_err("the body never ends in time");
    assert!(
        matches!(&error, FetchError::NoAnswer { detail } if detail.contains("timed out")),
        "{error:?}"
    );
}

#[test]
fn a_closed_port_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/x")).expect("URL");
    let error = permissive()
        .fetch(&url, &mut VecSink::new(10))
        .expect_err("nothing listens");
    assert!(matches!(error, FetchError::NoAnswer { .. }), "{error:?}");
    assert_eq!(error.to_string(), "the server did not answer");
    assert!(error.detail().contains(&port.to_string()), "{error:?}");
}

#[test]
fn a_loopback_literal_is_refused_without_a_request() {
    let server = TestServer::start(|_| response("200 OK", &[], b"secret"));
    let mut sink = VecSink::new(1000);
    let error = guarded()
        .fetch(&server.url("/x"), &mut sink)
        .expect_err("loopback is refused");
    assert_eq!(
        error,
        FetchError::NotAllowed {
            detail: "127.0.0.1 is a private or local address".to_owned()
        }
    );
    assert_eq!(error.to_string(), "the address is not allowed");
    assert!(sink.data.is_empty());
    thread::sleep(Duration::from_millis(100));
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

#[test]
fn ipv6_and_mapped_literals_are_refused() {
    for raw in [
        "http://[::1]:9/x",
        "http://[::ffff:127.0.0.1]:9/x",
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/x",
        "http://0.0.0.0:9/",
    ] {
        let url = HttpUrl::parse(raw).expect("a valid URL");
        let error = guarded()
            .fetch(&url, &mut VecSink::new(10))
            .expect_err("refused");
        assert!(
            matches!(error, FetchError::NotAllowed { .. }),
            "{raw}: {error:?}"
        );
    }
}

#[test]
fn a_name_resolving_to_loopback_is_refused_without_a_request() {
    let server = TestServer::start(|_| response("200 OK", &[], b"secret"));
    let url = HttpUrl::parse(&format!("http://localhost:{}/", server.port)).expect("URL");
    let mut sink = VecSink::new(1000);
    let error = guarded()
        .fetch(&url, &mut sink)
        .expect_err("localhost is refused");
    assert!(
        matches!(&error, FetchError::NotAllowed { detail }
            if detail.starts_with("localhost resolves to a private or local address (")),
        "{error:?}"
    );
    assert!(sink.data.is_empty());
    thread::sleep(Duration::from_millis(100));
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

#[test]
fn the_same_names_are_fetched_when_private_networks_are_allowed() {
    let server = TestServer::start(|_| response("200 OK", &[], b"ok"));
    let url = HttpUrl::parse(&format!("http://localhost:{}/a.txt", server.port)).expect("URL");
    let mut sink = VecSink::new(1000);
    let fetched = permissive().fetch(&url, &mut sink);
    // `localhost` may resolve to ::1 first; the server listens on 127.0.0.1
    // only, and the connector falls back to it.
    assert_eq!(
        fetched,
        Ok(Fetched {
            filename: "a.txt".to_owned()
        })
    );
    assert_eq!(sink.data, b"ok");
}

//! "The limit" of the machine for `bench/run.sh`: a bare actix-web server
//! (no auth, no database, no middleware) answering `GET /api/missions/` with
//! a static page of 20 missions, the same shape and size as the real API's
//! first page (built once at start-up).
//!
//! ```sh
//! cargo run --release -p autodocs-http --example static_page -- 127.0.0.1:8001
//! ```

use std::io::Write;
use std::net::TcpListener;

use actix_web::http::header::ContentType;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use serde_json::{Value, json};

/// The description `bench/seed.py` gives its missions (kept in step by hand).
const DESCRIPTION: &str =
    "Collect the 2025 returns, W-2 forms and bank statements for the annual filing.";

/// One list item with every key of the contract's `Mission`, with values
/// like those `bench/seed.py` creates (a pending mission with 3 steps).
fn mission(id: u64) -> Value {
    let created = format!(
        "2026-11-25T10:{:02}:{:02}.{:06}Z",
        id / 60 % 60,
        id % 60,
        123_456 + id
    );
    json!({
        "id": id,
        "title": format!("Retrieve Tax Documents {id:03}"),
        "description": DESCRIPTION,
        "type": "document_retrieval",
        "status": "pending",
        "priority": "medium",
        "progress": 0,
        "owner": 1,
        "deadline": null,
        "started_at": null,
        "completed_at": null,
        "created_at": created,
        "updated_at": created,
        "steps_total": 3,
        "steps_completed": 0,
        "document_count": 0,
    })
}

/// The first page of 100 missions, 20 per page, newest first.
fn page(address: &str) -> Bytes {
    let results: Vec<Value> = (81..=100).rev().map(mission).collect();
    let body = json!({
        "count": 100,
        "next": format!("http://{address}/api/missions/?page=2&page_size=20"),
        "previous": null,
        "results": results,
    });
    Bytes::from(body.to_string())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8001".to_owned());
    let listener = TcpListener::bind(&bind)?;
    let address = listener.local_addr()?;
    let body = page(&address.to_string());
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new().route(
            "/api/missions/",
            web::get().to(move || {
                let body = body.clone();
                async move {
                    HttpResponse::Ok()
                        .content_type(ContentType::json())
                        .body(body)
                }
            }),
        )
    })
    .listen(listener)?
    .run();
    println!("listening on http://{address}");
    std::io::stdout().flush()?;
    server.await
}

//! `GET /api/docs/`: an interactive API reference (Swagger UI) on the
//! OpenAPI document; `GET /api/asyncapi/`: the WebSocket events; and the
//! page's assets at `/static/apidocs/<file>`.
//!
//! Every asset is compiled into the binary, so the page works with no
//! internet access, and the page's `Content-Security-Policy` allows nothing
//! but this origin, which proves it: a browser would refuse anything fetched
//! from elsewhere. The assets are outside `/api/` on purpose: they are not
//! API operations.

use std::sync::LazyLock;

use actix_web::http::header::{self, ETag, EntityTag, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

use crate::client::ClientPolicy;
use crate::error::{ApiError, ApiResult};
use crate::routes::documents::none_match;
use crate::state::AppState;

/// The vendored `swagger-ui-dist` release (see `assets/swagger-ui/README.md`).
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

/// The page's policy: scripts, styles, images and requests from this origin
/// only (Swagger UI's stylesheet draws its icons from `data:` images); no
/// inline script, no framing, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// How long a browser may reuse an asset before it revalidates it with its
/// `ETag` (a new binary may bring a new Swagger UI under the same name).
const ASSET_CACHE_CONTROL: &str = "public, max-age=3600";

const PAGE: &str = include_str!("../../assets/apidocs/index.html");

/// A file the page loads.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Every file served under `/static/apidocs/`; any other name is a 404.
const ASSETS: [Asset; 6] = [
    Asset {
        name: "swagger-ui-bundle.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js"),
    },
    Asset {
        name: "swagger-ui.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/swagger-ui/swagger-ui.css"),
    },
    Asset {
        name: "favicon-32x32.png",
        content_type: "image/png",
        body: include_bytes!("../../assets/swagger-ui/favicon-32x32.png"),
    },
    Asset {
        name: "favicon-16x16.png",
        content_type: "image/png",
        body: include_bytes!("../../assets/swagger-ui/favicon-16x16.png"),
    },
    Asset {
        name: "apidocs.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/apidocs/apidocs.js"),
    },
    Asset {
        name: "apidocs.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/apidocs/apidocs.css"),
    },
];

/// Each asset's strong `ETag`, its content's sha256, in [`ASSETS`]' order.
static ETAGS: LazyLock<Vec<EntityTag>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.body);
            let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
            EntityTag::new_strong(hex)
        })
        .collect()
});

/// Hashes the assets now (a few milliseconds for the 2 MB of Swagger UI),
/// so that the first request for one does not do it on the event loop.
pub fn prepare() {
    LazyLock::force(&ETAGS);
}

/// The API reference page.
#[utoipa::path(get, path = "/api/docs/", operation_id = "docs_retrieve", tag = "docs",
    responses((status = 200, description = "An interactive API reference (Swagger UI) on /api/schema/; \
        its assets are served by this server under /static/apidocs/.",
        content_type = "text/html", body = String)))]
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE)
}

/// One asset of the page, with `ETag` and `If-None-Match` support.
pub async fn asset(request: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let (index, asset) = ASSETS
        .iter()
        .enumerate()
        .find(|(_, asset)| asset.name == path.as_str())
        .ok_or(ApiError::NotFound)?;
    let etag = ETAGS.get(index).ok_or(ApiError::NotFound)?;
    let mut response = HttpResponse::Ok();
    response
        .insert_header(ETag(etag.clone()))
        .insert_header((header::CACHE_CONTROL, ASSET_CACHE_CONTROL));
    if none_match(&request, etag) {
        return Ok(response
            .status(actix_web::http::StatusCode::NOT_MODIFIED)
            .finish());
    }
    Ok(response
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ))
        .body(asset.body))
}

/// The AsyncAPI document of the WebSocket endpoints.
#[utoipa::path(get, path = "/api/asyncapi/", operation_id = "asyncapi_retrieve", tag = "docs",
    responses((status = 200, description = "The AsyncAPI 3.0 document of the WebSocket endpoints \
        (/ws/events/, /ws/missions/{id}/): authentication, frames, close codes and limits.",
        content_type = "application/json", body = Object)))]
pub async fn asyncapi(request: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let openapi = serde_json::to_value(crate::openapi::document())
        .map_err(|error| ApiError::Internal(format!("OpenAPI document: {error}")))?;
    let base_url = ClientPolicy::base_url_of(&request);
    Ok(HttpResponse::Ok().json(crate::asyncapi::document(
        &base_url,
        state.hub.policy(),
        &openapi,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_served() {
        for reference in PAGE.split('"').filter(|part| part.starts_with("/static/")) {
            let name = reference.trim_start_matches("/static/apidocs/");
            assert!(
                ASSETS.iter().any(|asset| asset.name == name),
                "{reference} is not an asset"
            );
        }
        assert_eq!(ETAGS.len(), ASSETS.len());
    }
}

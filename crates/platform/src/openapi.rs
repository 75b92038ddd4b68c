//! The OpenAPI document each service serves at `/openapi.json`, generated from the code: the
//! service's own operations come from its handlers' `#[utoipa::path]` annotations (registered
//! with their routes through `utoipa_axum`, so a route cannot exist undocumented), the platform's
//! (health, metrics, the manual clock) from the same annotations here. Added to every operation:
//! the problem document (RFC 9457) as its 4XX and 503 answers, unless it declares its own.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, Ref, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

use contracts::openapi::operations;

use crate::problem::ApiError;

/// The security scheme of the internal services: a caller's signed service credential.
pub const SERVICE_CREDENTIAL: &str = "service_credential";
/// The gateway's security scheme: an ES256 JWT from the bank's token issuer.
pub const BEARER: &str = "bearer";

const PROBLEM_TYPE: &str = "application/problem+json";

/// The base document of an internal service: every operation but health needs a service credential.
pub fn internal(title: &str, description: &str) -> OpenApi {
    let scheme = SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A service credential: an ES256 JWT the caller (a service, or ops tools) signs with its own key, \
                 `sub` the caller, `aud` this service, at most 15 minutes long; each caller may call only the \
                 routes granted to it (403 CALLER_NOT_ALLOWED otherwise)",
            ))
            .build(),
    );
    base(title, description, SERVICE_CREDENTIAL, scheme)
}

/// The gateway's base document: bearer tokens; each operation names the scopes it accepts.
pub fn public(title: &str, description: &str) -> OpenApi {
    let scheme = SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "An ES256 JWT from the bank's token issuer (iss, aud, exp checked); `sub` is the customer id, \
                 `scope` one or more of customer, ops:read, ops:write, batch",
            ))
            .build(),
    );
    base(title, description, BEARER, scheme)
}

fn base(title: &str, description: &str, scheme_name: &str, scheme: SecurityScheme) -> OpenApi {
    OpenApiBuilder::new()
        .info(InfoBuilder::new().title(title).description(Some(description)).version(env!("CARGO_PKG_VERSION")))
        .components(Some(ComponentsBuilder::new().security_scheme(scheme_name, scheme).build()))
        .security(Some(vec![SecurityRequirement::new(scheme_name, Vec::<String>::new())]))
        .build()
}

/// The document a service serves: its own operations and the platform's, every one of them with
/// its refusals described, as JSON.
pub(crate) fn served(mut own: OpenApi, platform: OpenApi) -> String {
    // Health is open everywhere; on the gateway (bearer tokens are per route) its document too,
    // and its metrics are no public operation (a service credential reads them): not listed.
    let public = own.components.as_ref().is_some_and(|c| c.security_schemes.contains_key(BEARER));
    let mut platform = platform;
    if public {
        platform.paths.paths.remove("/metrics");
    }
    let open_paths: Vec<String> =
        platform.paths.paths.keys().filter(|p| public || p.starts_with("/health/")).cloned().collect();
    own.merge(platform);
    for path in &open_paths {
        open(&mut own, path);
    }
    let components = own.components.get_or_insert_with(Default::default);
    components.schemas.insert(ApiError::name().into_owned(), ApiError::schema());
    for item in own.paths.paths.values_mut() {
        for op in operations(item) {
            refusals(op);
        }
    }
    serde_json::to_string_pretty(&own).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Every refusal is a problem document; the operation's own text says which codes it answers.
fn refusals(op: &mut Operation) {
    let problem = || Content::new(Some(Ref::from_schema_name(ApiError::name())));
    let answers = [
        ("4XX", "Refused: a problem document whose `code` says why (see the Problem schema for every code)"),
        ("503", "A dependency or the service is not available: nothing was done, retry later (`Retry-After`)"),
    ];
    for (status, description) in answers {
        op.responses.responses.entry(status.to_string()).or_insert_with(|| {
            ResponseBuilder::new().description(description).content(PROBLEM_TYPE, problem()).build().into()
        });
    }
}

/// Marks an operation open to anyone (health probes): no credential.
fn open(doc: &mut OpenApi, path: &str) {
    if let Some(item) = doc.paths.paths.get_mut(path) {
        for op in operations(item) {
            op.security = Some(vec![SecurityRequirement::default()]);
        }
    }
}

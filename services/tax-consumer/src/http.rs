//! Tax endpoints (SPEC §8).

use axum::extract::State;
use axum::{Json, Router};
use chrono::{Datelike, NaiveDate};
use contracts::{
    DeadLetters, DeadLettersQuery, MonthlyReport, MonthlyReportQuery, ReplayDeadLetters, ReplayOutcome, Withholdings,
    WithholdingsQuery,
};
use platform::credential::Grant;
use platform::extract::{Actor, Json as Body, Query};
use platform::{ApiError, ApiResult};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
use crate::store::{self, Source};

/// Who may call what here (besides `ops`, the operators' tools, which may call everything): the
/// gateway its ops routes.
pub const GRANTS: &[Grant] = &[
    Grant::new("ops", "*", "*"),
    Grant::new("gateway", "GET", "/v1/tax/withholdings"),
    Grant::new("gateway", "GET", "/v1/tax/reports/monthly"),
    Grant::new("gateway", "GET", "/v1/tax/dead-letters"),
    Grant::new("gateway", "POST", "/v1/tax/dead-letters/replay"),
];

/// The routes and their OpenAPI description, from the same annotations (with what the schemas
/// cannot show by their types: `contracts::openapi::whole_truth`).
pub fn routes(state: AppState) -> (Router, OpenApi) {
    let doc = platform::openapi::internal(
        "Tax-consumer service",
        "Withholding records from the tax.withholding.v1 events, the monthly report, dead letters (SPEC §7–§8)",
    );
    let (router, doc) = OpenApiRouter::with_openapi(doc)
        .routes(routes!(withholdings))
        .routes(routes!(monthly))
        .routes(routes!(dead_letters))
        .routes(routes!(replay))
        .with_state(state)
        .split_for_parts();
    (router, contracts::openapi::whole_truth(doc))
}

/// Withholding records, keyset-paged by payout id: follow `next_after`.
#[utoipa::path(get, path = "/v1/tax/withholdings", tag = "tax", params(WithholdingsQuery),
    responses((status = 200, body = Withholdings)))]
async fn withholdings(State(s): State<AppState>, Query(q): Query<WithholdingsQuery>) -> ApiResult<Json<Withholdings>> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::validation("limit", "limit must be 1 to 10000"));
    }
    let withholdings = store::withholdings(&s.pool, q.account_id, q.from, q.to, q.after, limit).await?;
    let next_after = (withholdings.len() as i64 == limit).then(|| withholdings.last().map(|w| w.payout_id)).flatten();
    Ok(Json(Withholdings { withholdings, next_after }))
}

/// Parses `YYYY-MM` into the month's first day, the next month's first day, and the remittance
/// due date (the 10th of the following month).
pub fn month_bounds(month: &str) -> Option<(NaiveDate, NaiveDate, NaiveDate)> {
    let (y, m) = month.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let first = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1)?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)?
    };
    Some((first, next, next.with_day(10)?))
}

/// The remittance report of a month: payouts, gross, each tax, and the due date (the 10th of the
/// next month).
#[utoipa::path(get, path = "/v1/tax/reports/monthly", tag = "tax", params(MonthlyReportQuery),
    responses((status = 200, body = MonthlyReport)))]
async fn monthly(State(s): State<AppState>, Query(q): Query<MonthlyReportQuery>) -> ApiResult<Json<MonthlyReport>> {
    let (first, next, due) =
        month_bounds(&q.month).ok_or_else(|| ApiError::validation("month", "month must be YYYY-MM"))?;
    Ok(Json(store::monthly(&s.pool, &q.month, first, next, due).await?))
}

/// Dead letters by id, with their replay history.
#[utoipa::path(get, path = "/v1/tax/dead-letters", tag = "dead letters", params(DeadLettersQuery),
    responses((status = 200, body = DeadLetters)))]
async fn dead_letters(State(s): State<AppState>, Query(q): Query<DeadLettersQuery>) -> ApiResult<Json<DeadLetters>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let dead_letters = store::dead_letters(&s.pool, q.after_id.unwrap_or(0), limit).await?;
    let next_after_id = dead_letters.last().map(|d| d.id);
    Ok(Json(DeadLetters { dead_letters, next_after_id }))
}

/// Re-processes the given dead letters, or all. Idempotent: a payout already recorded stays
/// recorded once. Each replay is recorded under who asked, as their credential proves it (the
/// gateway's caller, or the calling service); a `replayed_by` in the body is not taken.
#[utoipa::path(post, path = "/v1/tax/dead-letters/replay", tag = "dead letters", request_body = ReplayDeadLetters,
    responses((status = 200, body = ReplayOutcome)))]
async fn replay(
    State(s): State<AppState>,
    Actor(replayed_by): Actor,
    body: Body<ReplayDeadLetters>,
) -> ApiResult<Json<ReplayOutcome>> {
    let r = body.value;
    if r.ids.is_none() && !r.all {
        return Err(ApiError::validation("ids", "give ids or all: true"));
    }
    let letters = store::dead_letters_for_replay(&s.pool, if r.all { None } else { r.ids.as_deref() }).await?;
    let (mut recorded, mut duplicate, mut failed) = (0, 0, 0);
    for d in letters {
        let result = match crate::consumer::parse(d.payload.as_bytes()) {
            Ok(event) => {
                let src = Source { topic: &d.topic, partition: d.partition, offset: d.offset };
                if store::insert_withholding(&s.pool, &event, &src).await? {
                    recorded += 1;
                    "recorded".to_string()
                } else {
                    duplicate += 1;
                    "duplicate".to_string()
                }
            }
            Err(e) => {
                failed += 1;
                format!("failed: {e}")
            }
        };
        store::mark_replayed(&s.pool, d.id, &replayed_by, &result).await?;
    }
    Ok(Json(ReplayOutcome { recorded, duplicate, failed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_date_is_tenth_of_next_month() {
        let (f, n, d) = month_bounds("2024-12").unwrap();
        assert_eq!(
            (f.to_string(), n.to_string(), d.to_string()),
            ("2024-12-01".into(), "2025-01-01".into(), "2025-01-10".into())
        );
        assert!(month_bounds("2024-13").is_none());
        assert!(month_bounds("24-1").is_none());
    }
}

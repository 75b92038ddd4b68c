#!/usr/bin/env python3
"""Writes services/<name>/openapi.json from the route tables below (run after changing routes)."""
import json, pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROBLEM = {"description": "problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
COMMON = {
    "/health/live": [("get", "Liveness", None, "Health")],
    "/health/ready": [("get", "Readiness of the database and, where used, Redis and Kafka", None, "Health")],
    "/metrics": [("get", "Prometheus metrics", None, None)],
    "/v1/admin/clock": [("put", "Set the shared, frozen Seoul date and time (only with CLOCK_MODE=manual)", "SetClock", "Clock")],
}
S = {"type": "string"}; U = {"type": "string", "format": "uuid"}; D = {"type": "string", "format": "date"}
I = {"type": "integer", "format": "int64"}; B = {"type": "boolean"}; T = {"type": "string", "format": "date-time"}
def obj(req, **props):
    return {"type": "object", "required": req, "properties": props}
SCHEMAS = {
    "Problem": obj(["type", "title", "status", "code", "detail"], type=S, title=S, status={"type": "integer"}, status_code={"type": "integer", "description": "same as status (earlier clients)"}, code=S, detail=S, field=S, retry_after={"type": "integer"}, instance=S),
    "Health": obj(["status"], status=S, service=S),
    "PayoutPage": obj(["payouts"], payouts={"type": "array", "items": {"type": "object"}}, next_after=U),
    "StartPayoutRun": obj([], business_date=D, account_ids={"type": "array", "items": U}),
    "PayoutRun": obj(["run_id", "business_date", "scope", "state", "accounts", "enumeration_complete", "paid", "skipped", "failed", "pending", "totals", "progress", "started_at"], run_id=U, business_date=D, scope={"enum": ["ALL", "ACCOUNTS"]}, state={"enum": ["RUNNING", "COMPLETED", "EXPIRED"]}, accounts=I, enumeration_complete=B, paid=I, skipped={"type": "object", "additionalProperties": I}, failed=I, pending=I, totals=obj(["gross", "income_tax", "local_tax", "rural_special_tax", "net"], gross=I, income_tax=I, local_tax=I, rural_special_tax=I, net=I), progress={"type": "number"}, started_at=T, finished_at=T),
    "SetClock": obj(["today"], today=D, time={"type": "string", "format": "time", "description": "Seoul time of day, default 00:00:00"}), "Clock": obj(["today", "time", "mode"], today=D, time={"type": "string", "format": "time"}, mode=S),
    "CreateCustomer": obj(["name", "tax_category"], name=S, tax_category={"enum": ["GENERAL", "TAX_FREE", "PREFERENTIAL"]}),
    "AmendCustomer": {"type": "object", "additionalProperties": False, "properties": {"status": {"enum": ["ACTIVE", "IDENTITY_THEFT", "HACKING_VICTIM", "DECEASED"]}, "reason": S, "tax_category": {"enum": ["GENERAL", "TAX_FREE", "PREFERENTIAL"]}}},
    "ChangeTaxCategory": obj(["tax_category"], tax_category={"enum": ["GENERAL", "TAX_FREE", "PREFERENTIAL"]}),
    "PayoutFence": obj(["subject", "rev"], subject={"type": "string", "description": "account:<id>, customer:<id> or rates:<product>"}, rev=I, effective_from=D),
    "PayoutFences": {"type": "array", "items": {"$ref": "#/components/schemas/PayoutFence"}},
    "ChangeCustomerStatus": obj(["status"], status={"enum": ["ACTIVE", "IDENTITY_THEFT", "HACKING_VICTIM", "DECEASED"]}, reason=S),
    "Customer": obj(["customer_id", "name", "status", "tax_category", "created_at"], customer_id=U, name=S, status=S, status_reason=S, tax_category=S, created_at=T, rev=I),
    "OpenAccount": obj(["customer_id", "product_code"], customer_id=U, product_code=S),
    "ChangeAccountStatus": obj(["status"], status={"enum": ["ACTIVE", "DORMANT", "CLOSED"]}),
    "ChangeHolds": obj(["deposit_suspended", "withdrawal_suspended"], deposit_suspended=B, withdrawal_suspended=B),
    "Account": obj(["account_id", "customer_id", "product_code", "opened_on", "status", "deposit_suspended", "withdrawal_suspended"], account_id=U, customer_id=U, product_code=S, opened_on=D, status=S, deposit_suspended=B, withdrawal_suspended=B, created_at=T, rev=I),
    "AccountPage": obj(["accounts"], accounts={"type": "array", "items": {"$ref": "#/components/schemas/Account"}}, next_after=U),
    "MoneyMovement": obj(["amount"], amount=I, value_date=D),
    "Transfer": obj(["from_account_id", "to_account_id", "amount"], from_account_id=U, to_account_id=U, amount=I),
    "Posting": obj(["entry_id", "account_id", "kind", "amount", "value_date", "balance_after"], entry_id=U, account_id=U, kind=S, amount=I, value_date=D, balance_after=I),
    "TransferPosting": obj(["entry_id", "from_account_id", "to_account_id", "amount"], entry_id=U, from_account_id=U, to_account_id=U, amount=I, value_date=D, from_balance_after=I, to_balance_after=I),
    "Balance": obj(["account_id", "balance", "as_of"], account_id=U, balance=I, as_of=D),
    "Entries": obj(["account_id", "entries"], account_id=U, entries={"type": "array", "items": {"type": "object"}}),
    "DailyBalances": obj(["account_id", "from", "to", "points"], account_id=U, points={"type": "array", "items": obj(["date", "balance"], date=D, balance=I)}, history_rev=I, digest=S),
    "InterestPostingRequest": {"type": "object"}, "InterestPosting": {"type": "object"}, "InterestPostingFeed": obj(["postings"], postings={"type": "array", "items": {"type": "object"}}),
    "CreateProduct": obj(["code", "name"], code=S, name=S),
    "RateSchedule": obj(["effective_from", "bands"], effective_from=D, bands={"type": "array", "items": obj(["from", "rate"], **{"from": I, "to": I, "rate": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]{1,4})?$"}})}),
    "Product": obj(["code", "name", "rate_schedules"], code=S, name=S, rate_schedules={"type": "array", "items": {"$ref": "#/components/schemas/RateSchedule"}}),
    "Products": {"type": "array", "items": {"$ref": "#/components/schemas/Product"}},
    "Estimate": obj(["account_id", "period_from", "period_to", "gross", "income_tax", "local_tax", "rural_special_tax", "net", "payable"], account_id=U, business_date=D, period_from=D, period_to=D, gross=I, income_tax=I, local_tax=I, rural_special_tax=I, net=I, carry_in_units=I, payable=B, code=S),
    "Payout": obj(["payout_id", "account_id", "business_date", "period_from", "period_to", "gross", "net", "carry_units", "balance_after"], payout_id=U, account_id=U, customer_id=U, business_date=D, period_from=D, period_to=D, gross=I, income_tax=I, local_tax=I, rural_special_tax=I, net=I, tax_category=S, carry_units=I, balance_after=I, entry_id=U, created_at=T),
    "Payouts": obj(["account_id", "payouts"], account_id=U, payouts={"type": "array", "items": {"$ref": "#/components/schemas/Payout"}}),
    "Withholdings": obj(["withholdings"], withholdings={"type": "array", "items": {"type": "object"}}),
    "MonthlyReport": obj(["month", "payouts", "gross", "income_tax", "local_tax", "rural_special_tax", "total_tax", "due_date"], month=S, payouts=I, gross=I, income_tax=I, local_tax=I, rural_special_tax=I, total_tax=I, due_date=D),
    "DeadLetters": obj(["dead_letters"], dead_letters={"type": "array", "items": {"type": "object"}}),
    "Replay": obj([], ids={"type": "array", "items": I}, all=B, replayed_by=S),
    "ReplayResult": {"type": "object"},
    "Reconciliation": {"type": "object"},
    "PayoutRuns": obj(["runs"], runs={"type": "array", "items": {"type": "object"}}),
}
SERVICES = {
    "customer": ("Customer service", {
        "/v1/customers": [("post", "Register a customer", "CreateCustomer", "Customer")],
        "/v1/customers/{id}": [("get", "Read a customer", None, "Customer"), ("patch", "Change status (with reason) and/or tax category in one fenced change", "AmendCustomer", "Customer")],
        "/v1/customers/{id}/status": [("put", "Change a customer's status (fenced in the ledger before it commits)", "ChangeCustomerStatus", "Customer")],
        "/v1/customers/{id}/tax-category": [("put", "Change a customer's tax category (fenced in the ledger before it commits)", "ChangeTaxCategory", "Customer")],
    }),
    "account-info": ("Account-info service", {
        "/v1/accounts": [("post", "Open an account (opening date = business date)", "OpenAccount", "Account"), ("get", "List accounts by product, status or customer, keyset-paged (?product_code=&status=&customer_id=&after=&limit=)", None, "AccountPage")],
        "/v1/accounts/{id}": [("get", "Read an account", None, "Account")],
        "/v1/accounts/{id}/status": [("put", "Change an account's status", "ChangeAccountStatus", "Account")],
        "/v1/accounts/{id}/holds": [("put", "Set deposit/withdrawal holds", "ChangeHolds", "Account")],
    }),
    "accounting": ("Accounting service (the ledger)", {
        "/v1/ledger/accounts/{id}/deposits": [("post", "Deposit (Idempotency-Key header)", "MoneyMovement", "Posting")],
        "/v1/ledger/accounts/{id}/withdrawals": [("post", "Withdraw (Idempotency-Key header)", "MoneyMovement", "Posting")],
        "/v1/ledger/transfers": [("post", "Transfer between accounts (Idempotency-Key header)", "Transfer", "TransferPosting")],
        "/v1/ledger/accounts/{id}/balance": [("get", "Balance of record", None, "Balance")],
        "/v1/ledger/accounts/{id}/entries": [("get", "Journal entries touching the account", None, "Entries")],
        "/v1/ledger/accounts/{id}/daily-balances": [("get", "End-of-day balances for ?from=&to= (for the interest service)", None, "DailyBalances")],
        "/v1/ledger/interest-postings": [("post", "Book an interest payout (interest service only)", "InterestPostingRequest", "InterestPosting"), ("get", "Feed of booked payouts after ?after_seq= (recovery)", None, "InterestPostingFeed")],
        "/v1/ledger/payout-fences": [("post", "Raise a payout fence before committing a change to a payout input (customer, account-info, interest only); 409 RATE_SCHEDULE_AFFECTS_PAID_PERIOD", "PayoutFence", "PayoutFence"), ("get", "Fences raised in the last ?within_secs= (default 86400) whose subject starts with ?prefix= (owners catch up at start-up)", None, "PayoutFences")],
    }),
    "interest": ("Interest service", {
        "/v1/interest/products": [("get", "List products", None, "Products"), ("post", "Create a product", "CreateProduct", "Product")],
        "/v1/interest/products/{code}": [("get", "Read a product and its rate schedules", None, "Product")],
        "/v1/interest/products/{code}/rate-schedules": [("get", "List rate schedules", None, "Product"), ("post", "Add an effective-dated rate schedule", "RateSchedule", "Product")],
        "/v1/interest/accounts/{id}": [("get", "Estimate interest payable now", None, "Estimate")],
        "/v1/interest/accounts/{id}/payouts": [("post", "Pay accrued interest now (Idempotency-Key header)", None, "Payout"), ("get", "Payout history", None, "Payouts")],
        "/v1/interest/payouts": [("get", "Recorded payouts with a business date in ?from=&to=, keyset-paged by ?after=&limit= (reconciliation)", None, "PayoutPage")],
        "/v1/interest/payout-runs": [("post", "Start today's payout run over every account or the given ones, or resume the same cancelled run (202; 409 RUN_EXISTS names the existing run in instance)", "StartPayoutRun", "PayoutRun"), ("get", "The latest runs, newest first (?limit=, default 50)", None, "PayoutRuns")],
        "/v1/interest/payout-runs/{id}": [("get", "A payout run's state, counts, totals and progress", None, "PayoutRun")],
        "/v1/interest/payout-runs/{id}/cancel": [("post", "Cancel a running run: no account is claimed after it (idempotent; 409 RUN_FINISHED once it ended)", None, "PayoutRun")],
    }),
    "tax-consumer": ("Tax-consumer service", {
        "/v1/tax/withholdings": [("get", "Withholding records (?account_id=&from=&to=)", None, "Withholdings")],
        "/v1/tax/reports/monthly": [("get", "Monthly remittance report (?month=YYYY-MM)", None, "MonthlyReport")],
        "/v1/tax/dead-letters": [("get", "Dead-lettered messages", None, "DeadLetters")],
        "/v1/tax/dead-letters/replay": [("post", "Replay dead letters", "Replay", "ReplayResult")],
    }),
    "gateway": ("Gateway (the public entry; every route needs Authorization: Bearer <ES256 JWT>; 401 without a valid token, 403 INSUFFICIENT_SCOPE, 429 RATE_LIMITED with Retry-After)", {
        "/v1/me/accounts": [("get", "My accounts (scope customer; ?after=&limit=)", None, "AccountPage")],
        "/v1/me/accounts/{id}": [("get", "One of my accounts (another customer's is 404)", None, "Account")],
        "/v1/me/accounts/{id}/interest": [("get", "Estimate for one of my accounts (rate limited per customer)", None, "Estimate")],
        "/v1/me/accounts/{id}/payouts": [("post", "Get interest now on one of my accounts (Idempotency-Key header; rate limited per customer; audited)", None, "Payout"), ("get", "My payout history on the account", None, "Payouts")],
        "/v1/ops/payout-runs": [("post", "Start (or resume a cancelled) payout run (scope ops:write or batch; audited)", "StartPayoutRun", "PayoutRun"), ("get", "The latest runs (ops:read, ops:write or batch)", None, "PayoutRuns")],
        "/v1/ops/payout-runs/{id}": [("get", "Follow a payout run (ops:read, ops:write or batch)", None, "PayoutRun")],
        "/v1/ops/payout-runs/{id}/cancel": [("post", "Cancel a running run (ops:write or batch; audited)", None, "PayoutRun")],
        "/v1/ops/payouts": [("get", "Recorded payouts by business date (ops:read; ?from=&to=&after=&limit=)", None, "PayoutPage")],
        "/v1/ops/dead-letters": [("get", "Dead letters (ops:read)", None, "DeadLetters")],
        "/v1/ops/dead-letters/replay": [("post", "Replay dead letters (ops:write; audited)", "Replay", "ReplayResult")],
        "/v1/ops/tax/withholdings": [("get", "Withholding records (ops:read; ?account_id=&from=&to=)", None, "Withholdings")],
        "/v1/ops/tax/reports/monthly": [("get", "Monthly remittance report (ops:read; ?month=YYYY-MM)", None, "MonthlyReport")],
        "/v1/ops/reconcile": [("get", "Reconcile interest payouts, ledger postings and withholding records of ?from=&to= (ops:read; at most 31 days)", None, "Reconciliation")],
        "/v1/ops/clock": [("get", "The manual clock (ops:read; only with CLOCK_MODE=manual)", None, None), ("put", "Move the manual clock (ops:write; audited)", None, None)],
    }),
}
for name, (title, paths) in SERVICES.items():
    doc = {"openapi": "3.1.0", "info": {"title": title, "version": "1.0.0"}, "paths": {}, "components": {"schemas": {}}}
    used = {"Problem"}
    common = {k: v for k, v in COMMON.items() if not (name == "gateway" and k == "/v1/admin/clock")}
    for path, ops in {**paths, **common}.items():
        item = {}
        for method, summary, req, resp in ops:
            op = {"summary": summary, "responses": {"200": {"description": "ok"}, "4XX": PROBLEM, "503": PROBLEM}}
            if resp:
                op["responses"]["200"]["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{resp}"}}}
                used.add(resp)
            if req:
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{req}"}}}}
                used.add(req)
            params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in ("id", "code") if "{%s}" % p in path]
            if params:
                op["parameters"] = params
            item[method] = op
        doc["paths"][path] = item
    doc["components"]["schemas"] = {k: SCHEMAS[k] for k in sorted(used)}
    (ROOT / "services" / name / "openapi.json").write_text(json.dumps(doc, indent=1) + "\n")

#!/usr/bin/env python3
"""An independent checker of the interest-payout slice, run after a fault workload has healed and
drained (tools/chaos, tests/tests/chaos.rs). It reads the five databases with `psql` and the
workload's history (JSON lines) and shares no code with the services: the accrual and withholding
arithmetic below is written again from docs/SPEC.md §3–§4.

    check.py --history FILE --db customer=URL --db account-info=URL --db accounting=URL \
             --db interest=URL --db tax-consumer=URL

Prints a JSON report (invariants checked, counts, violations) and exits 1 if any invariant fails.
"""
import argparse
import datetime as dt
import json
import subprocess
import sys
from collections import defaultdict

UNITS_PER_WON = 365_000_000
TAX = {  # SPEC §4: (component, base, rate in millionths), each truncated to 10 won, in order
    "GENERAL": [("income_tax", "gross", 140_000), ("local_tax", "income_tax", 100_000)],
    "TAX_FREE": [],
    "PREFERENTIAL": [("income_tax", "gross", 90_000), ("rural_special_tax", "gross", 5_000)],
}


def rows(url, sql):
    """The rows of a query as dicts (psql, one JSON document)."""
    out = subprocess.run(
        ["psql", url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c",
         f"SELECT coalesce(json_agg(t), '[]') FROM ({sql}) t"],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def day(s):
    return dt.date.fromisoformat(s[:10])


def rate_millionths(text):
    whole, _, frac = text.partition(".")
    return int(whole) * 10_000 + int((frac + "0000")[:4])


def taxes(category, gross):
    out = {"income_tax": 0, "local_tax": 0, "rural_special_tax": 0}
    for component, base, rate in TAX[category]:
        amount = (gross if base == "gross" else out[base]) * rate // 1_000_000
        out[component] = amount // 10 * 10
    return out


class Report:
    def __init__(self):
        self.checked = defaultdict(int)
        self.violations = []

    def check(self, invariant, ok, detail):
        self.checked[invariant] += 1
        if not ok:
            self.violations.append({"invariant": invariant, "detail": detail})


def forbids(aspect, state, leg):
    """Whether the state an answered change set forbids money moving out of / into an account."""
    if aspect == "holds":
        return state.get("withdrawal_suspended") if leg == "out" else state.get("deposit_suspended")
    if aspect == "account_status":
        return state.get("status") != "ACTIVE"
    return leg == "out" and state.get("status") != "ACTIVE"  # the customer's status


def check_movements_after_changes(r, history, accounts, movements):
    """`movements`: the journal's deposits, withdrawals and transfers with the moment each was
    written (under its row locks, just before its commit) and its legs. A change answered before
    that moment committed before the movement did; unless another change of the same subject may
    have committed in between (sent before that moment, answered later or never), it governs."""
    changes = defaultdict(list)  # (aspect, account or customer id) -> history records of changes
    for h in history:
        if h.get("op") in ("holds", "account_status", "customer_status") and "sent_at" in h:
            changes[(h["op"], h["path"].split("/")[3])].append(h)
    for m in movements:
        for account_id, leg in m["legs"]:
            subjects = [("holds", account_id), ("account_status", account_id),
                        ("customer_status", accounts[account_id]["customer_id"])]
            for aspect, subject in subjects:
                seen = changes.get((aspect, subject), [])
                answered = [c for c in seen if c["outcome"] == "ok" and c["at"] < m["written"]]
                if not answered:
                    continue
                governing = max(answered, key=lambda c: c["at"])
                overlapping = [c for c in seen if c is not governing and c["sent_at"] < m["written"]
                               and (c["outcome"] != "ok" or c["at"] > governing["at"])]
                if overlapping:
                    continue
                r.check("no_movement_after_answered_change", not forbids(aspect, governing["request"], leg),
                        f"{m['kind']} {m['entry_id']} ({leg} of {account_id}) written at {m['written']}, after "
                        f"{aspect} {governing['request']} was answered at {governing['at']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--history", required=True)
    ap.add_argument("--db", action="append", required=True, help="service=postgres URL")
    args = ap.parse_args()
    db = dict(d.split("=", 1) for d in args.db)
    history = [json.loads(line) for line in open(args.history) if line.strip()]
    r = Report()

    customers = {c["customer_id"]: c for c in rows(db["customer"], "SELECT customer_id, tax_category FROM customers")}
    accounts = {a["account_id"]: a for a in rows(db["account-info"], "SELECT account_id, customer_id, opened_on FROM accounts")}
    entries = {e["entry_id"]: e for e in rows(db["accounting"],
               "SELECT entry_id, kind, account_id, business_date, value_date, payout_id,"
               " extract(epoch FROM created_at)::float8 AS written FROM journal_entries")}
    lines = rows(db["accounting"], "SELECT entry_id, ledger_account, account_id, debit, credit FROM journal_lines")
    balances = {b["account_id"]: b["balance"] for b in rows(db["accounting"], "SELECT account_id, balance FROM ledger_accounts")}
    keys = rows(db["accounting"], "SELECT key, operation, status, response->>'entry_id' AS entry_id FROM idempotency_keys")
    payouts = rows(db["interest"], "SELECT payout_id, account_id, customer_id, business_date, period_from, period_to, gross,"
                   " income_tax, local_tax, rural_special_tax, net, tax_category, carry_in_units, carry_units, entry_id,"
                   " idempotency_key FROM payouts ORDER BY account_id, period_from")
    schedules = rows(db["interest"], "SELECT product_code, effective_from, bands FROM rate_schedules ORDER BY effective_from")
    products = {a["account_id"]: a["product_code"] for a in rows(db["account-info"], "SELECT account_id, product_code FROM accounts")}
    withholdings = {w["payout_id"]: w for w in rows(db["tax-consumer"],
                    "SELECT payout_id, account_id, business_date, gross, income_tax, local_tax, rural_special_tax, tax_category FROM withholdings")}
    dead = rows(db["tax-consumer"], "SELECT id, error FROM dead_letters WHERE replayed_at IS NULL")

    # 1. The journal balances: each entry, and debits equal credits overall.
    per_entry = defaultdict(lambda: [0, 0])
    postings = defaultdict(list)  # account -> [(value_date, amount)]
    for ln in lines:
        per_entry[ln["entry_id"]][0] += ln["debit"]
        per_entry[ln["entry_id"]][1] += ln["credit"]
        if ln["ledger_account"] == "CUSTOMER_DEPOSITS":
            postings[ln["account_id"]].append((day(entries[ln["entry_id"]]["value_date"]), ln["credit"] - ln["debit"]))
    for entry_id, (d, c) in per_entry.items():
        r.check("entry_balances", d == c, f"entry {entry_id}: debits {d} credits {c}")
    total_d = sum(d for d, _ in per_entry.values())
    total_c = sum(c for _, c in per_entry.values())
    r.check("ledger_balances", total_d == total_c, f"debits {total_d} credits {total_c}")

    # 2. Each balance of record equals the sum of the account's postings.
    for account_id, balance in balances.items():
        posted = sum(a for _, a in postings[account_id])
        r.check("balance_is_sum_of_postings", balance == posted, f"{account_id}: balance {balance}, postings {posted}")

    # 3. Every acknowledged money movement is in the journal with its amount; every movement in the
    #    journal was asked for (acknowledged, or an unknown answer it resolves).
    asked = {h["key"]: h for h in history if h.get("op") in ("deposit", "withdraw", "transfer")}
    by_key = {k["key"]: k for k in keys}
    for key, h in asked.items():
        if h["outcome"] == "ok":
            entry_id = h["body"].get("entry_id")
            r.check("acknowledged_movement_booked", entry_id in entries, f"{h['op']} {key}: entry {entry_id} missing")
            r.check("acknowledged_movement_booked", by_key.get(key, {}).get("entry_id") == entry_id,
                    f"{h['op']} {key}: the stored answer is not the acknowledged one")
        elif h["outcome"] == "refused":
            stored = by_key.get(key)
            r.check("refused_movement_not_booked", stored is None or stored["status"] >= 400,
                    f"{h['op']} {key}: refused ({h.get('status')}) but booked {stored}")
    movement_entries = {e for e, v in entries.items() if v["kind"] != "INTEREST_PAYOUT"}
    explained = {k["entry_id"] for k in keys if k["key"] in asked}
    for entry_id in movement_entries:
        r.check("every_movement_asked_for", entry_id in explained, f"entry {entry_id} has no request")
    # An unknown answer is resolved by asking again with its key (the workload's "resolves" record).
    unknown_keys = {h["key"] for h in history if h.get("outcome") == "unknown" and "key" in h}
    final = {h["key"]: h for h in history if "key" in h}
    for key in unknown_keys:
        r.check("unknown_answer_resolved", final[key]["outcome"] != "unknown", f"{final[key]['op']} {key} still unknown")

    # 4. Payouts: one per account and business date; the interest service and the ledger agree.
    seen = set()
    ledger_payouts = {v["payout_id"]: v for v in entries.values() if v["kind"] == "INTEREST_PAYOUT"}
    for p in payouts:
        k = (p["account_id"], p["business_date"])
        r.check("one_payout_per_account_and_day", k not in seen, f"{k} paid twice")
        seen.add(k)
        r.check("payout_booked_in_ledger", p["payout_id"] in ledger_payouts, f"payout {p['payout_id']} not in the ledger")
    ids = {p["payout_id"] for p in payouts}
    for payout_id in ledger_payouts:
        r.check("ledger_payout_recorded", payout_id in ids, f"ledger payout {payout_id} unknown to interest")

    # 5. Paid periods contiguous from the opening date, ending the day before the business date;
    # 6. every payout's amounts equal a recomputation over the account's final history.
    by_account = defaultdict(list)
    for p in payouts:
        by_account[p["account_id"]].append(p)
    entry_lines = defaultdict(list)
    for ln in lines:
        entry_lines[ln["entry_id"]].append(ln)
    for account_id, ps in by_account.items():
        ps.sort(key=lambda p: p["period_from"])
        expected_from = day(accounts[account_id]["opened_on"])
        carry = 0
        history_points = sorted(postings[account_id])
        product = products[account_id]
        product_schedules = [s for s in schedules if s["product_code"] == product]
        for p in ps:
            start, end, paid_on = day(p["period_from"]), day(p["period_to"]), day(p["business_date"])
            r.check("periods_contiguous", start == expected_from, f"payout {p['payout_id']} starts {start}, expected {expected_from}")
            r.check("period_ends_yesterday", end == paid_on - dt.timedelta(days=1), f"payout {p['payout_id']} ends {end} paid {paid_on}")
            units, d = 0, start
            while d <= end:
                balance = sum(a for vd, a in history_points if vd <= d)
                in_force = [s for s in product_schedules if day(s["effective_from"]) <= d]
                if balance > 0 and in_force:
                    for band in in_force[-1]["bands"]:
                        top = balance if band.get("to") is None else min(balance, band["to"])
                        units += max(0, top - band["from"]) * rate_millionths(band["rate"])
                d += dt.timedelta(days=1)
            gross, carry_out = divmod(carry + units, UNITS_PER_WON)
            tax = taxes(p["tax_category"], gross)
            want = {"gross": gross, **tax, "net": gross - sum(tax.values()), "carry_in_units": carry, "carry_units": carry_out}
            got = {k: p[k] for k in want}
            r.check("payout_amounts_recomputed", got == want, f"payout {p['payout_id']}: recorded {got}, recomputed {want}")
            r.check("tax_category_is_customers", p["tax_category"] == customers[p["customer_id"]]["tax_category"],
                    f"payout {p['payout_id']}: {p['tax_category']}")
            booked = defaultdict(int)
            for ln in entry_lines[p["entry_id"]]:
                booked[ln["ledger_account"]] += ln["credit"] - ln["debit"]
            ledger_view = {"gross": -booked["INTEREST_EXPENSE"], "income_tax": booked["INCOME_TAX_PAYABLE"],
                           "local_tax": booked["LOCAL_TAX_PAYABLE"], "rural_special_tax": booked["RURAL_SPECIAL_TAX_PAYABLE"],
                           "net": booked["CUSTOMER_DEPOSITS"]}
            r.check("ledger_entry_matches_payout", ledger_view == {k: p[k] for k in ledger_view},
                    f"payout {p['payout_id']}: ledger {ledger_view}")
            expected_from, carry = end + dt.timedelta(days=1), carry_out

    # 7. Every acknowledged payout exists as answered; every unknown one resolved one way (at most
    #    one payout per key).
    by_payout_key = defaultdict(list)
    for p in payouts:
        by_payout_key[p["idempotency_key"]].append(p)
    pays = [h for h in history if h.get("op") == "pay"]
    for h in pays:
        found = by_payout_key.get(h["key"], [])
        r.check("one_payout_per_key", len(found) <= 1, f"key {h['key']}: {len(found)} payouts")
        if h["outcome"] == "ok":
            ok = len(found) == 1 and found[0]["payout_id"] == h["body"].get("payout_id") and found[0]["net"] == h["body"].get("net")
            r.check("acknowledged_payout_exists", ok, f"key {h['key']}: answered {h['body'].get('payout_id')}, found {found}")
        elif h["outcome"] == "refused":
            r.check("refused_payout_not_paid", not found, f"key {h['key']}: refused {h.get('code')} but paid")

    # 8. Exactly one withholding record per payout, with its amounts; none without a payout.
    for p in payouts:
        w = withholdings.get(p["payout_id"])
        r.check("withholding_recorded", w is not None, f"payout {p['payout_id']}: no withholding")
        if w:
            same = all(w[k] == p[k] for k in ("account_id", "business_date", "gross", "income_tax", "local_tax", "rural_special_tax", "tax_category"))
            r.check("withholding_amounts_equal", same, f"payout {p['payout_id']}: withholding {w}")
    for payout_id in withholdings:
        r.check("no_withholding_without_payout", payout_id in ids, f"withholding {payout_id} has no payout")

    # 9. The dead-letter queue is empty (or each entry replayed).
    r.check("dead_letters_explained", not dead, f"unreplayed dead letters: {dead}")

    # 10. A payout run's progress counters equal a count of its items (and their payouts' amounts).
    by_id = {p["payout_id"]: p for p in payouts}
    counted = defaultdict(lambda: [0, 0, 0])
    for c in rows(db["interest"], "SELECT run_id, state, reason, n, gross, net FROM payout_run_counts"):
        counted[(c["run_id"], c["state"], c["reason"])] = [c["n"], c["gross"], c["net"]]
    items = defaultdict(lambda: [0, 0, 0])
    for i in rows(db["interest"], "SELECT run_id, state, reason, payout_id FROM payout_run_items"):
        t = items[(i["run_id"], i["state"], i["reason"] or "")]
        p = by_id.get(i["payout_id"], {"gross": 0, "net": 0})
        t[0] += 1; t[1] += p["gross"]; t[2] += p["net"]
    for k in set(counted) | set(items):
        r.check("run_counters_match_items", counted[k] == items[k], f"run {k}: counted {counted[k]}, items {items[k]}")

    # 11. No money movement committed after a hold, dormancy or restriction that had been answered:
    #     a movement first sent after such a change was answered (with no other change of that
    #     subject in flight or answered until the movement's own answer) must have been refused.
    legs = defaultdict(list)
    for ln in lines:
        if ln["ledger_account"] == "CUSTOMER_DEPOSITS":
            legs[ln["entry_id"]].append((ln["account_id"], "out" if ln["debit"] > 0 else "in"))
    movements = [{"entry_id": e, "kind": v["kind"], "written": v["written"], "legs": legs[e]}
                 for e, v in entries.items() if v["kind"] != "INTEREST_PAYOUT"]
    check_movements_after_changes(r, history, accounts, movements)

    outcomes = defaultdict(lambda: defaultdict(int))
    faults = defaultdict(int)
    for h in history:
        if "fault" in h:
            faults[h["fault"]] += h.get("phase") == "start"
        elif "op" in h:
            outcomes[h["op"]][h["outcome"]] += 1
    report = {
        "operations": {op: dict(o) for op, o in sorted(outcomes.items())},
        "faults": dict(sorted(faults.items())),
        "payouts": len(payouts), "withholdings": len(withholdings), "journal_entries": len(entries),
        "unknown_answers": len(unknown_keys),
        "unknown_resolved_as": dict(sorted(defaultdict(int, {o: sum(1 for k in unknown_keys if final[k]["outcome"] == o) for o in ("ok", "refused", "unknown")}).items())),
        "invariants_checked": dict(sorted(r.checked.items())),
        "violations": r.violations[:50], "violation_count": len(r.violations),
    }
    print(json.dumps(report, indent=1))
    sys.exit(1 if r.violations else 0)


if __name__ == "__main__":
    main()

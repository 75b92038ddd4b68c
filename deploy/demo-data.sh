#!/usr/bin/env bash
# Loads demo data through the public APIs: a product with a tiered (marginal) rate, customers in
# every status and tax category, accounts with four weeks of back-dated balance history, then
# prints a curl walk-through. With the manual clock the accounts open four weeks ago; with the
# system clock they open today (so the history starts today).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${BANK_STATE_DIR:-$ROOT/.local}"
C="${CUSTOMER_URL:-http://127.0.0.1:8081}"; A="${ACCOUNT_INFO_URL:-http://127.0.0.1:8082}"
L="${ACCOUNTING_URL:-http://127.0.0.1:8083}"; I="${INTEREST_URL:-http://127.0.0.1:8084}"
T="${TAX_URL:-http://127.0.0.1:8085}"; G="${GATEWAY_URL:-http://127.0.0.1:8080}"
# The internal services want a service credential for each of them, signed with the ops key
# (deploy/up.sh exports SERVICE_KEY_FILE and SERVICE_TRUST_FILE): one minted per call.
service_of() {
  case "$1" in
    "$C"/*) echo customer ;; "$A"/*) echo account-info ;; "$L"/*) echo accounting ;;
    "$I"/*) echo interest ;; "$T"/*) echo tax-consumer ;;
    "${LEGACY_CORE_URL:-legacy core not running}"/*) echo legacy-core ;;
  esac
}
curl() {
  local arg svc=""
  for arg in "$@"; do case "$arg" in http://*|https://*) svc="$(service_of "$arg")"; break ;; esac; done
  if [ -n "$svc" ]; then
    command curl -H "Authorization: Bearer $("${BANKCTL:-bankctl}" credentials token --audience "$svc")" "$@"
  else
    command curl "$@"
  fi
}
json() { curl -sS -f -H 'content-type: application/json' "$@"; }
field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

today="$(TZ=Asia/Seoul date +%F)"
start="$(TZ=Asia/Seoul date -d "$today -28 days" +%F)"
manual=0
curl -s -o /dev/null -w '%{http_code}' "$I/v1/admin/clock" | grep -q 200 && manual=1

if curl -sf "$I/v1/interest/products/DEMO-SAVINGS" >/dev/null; then
  echo "[demo] demo data already loaded"
else
  json -X POST "$I/v1/interest/products" -d '{"code":"DEMO-SAVINGS","name":"Demo savings (tiered)"}' >/dev/null
  json -X POST "$I/v1/interest/products/DEMO-SAVINGS/rate-schedules" -d '{"effective_from":"2020-01-01",
    "bands":[{"from":0,"to":50000000,"rate":"2.0"},{"from":50000000,"to":100000000,"rate":"2.3"},{"from":100000000,"rate":"0.1"}]}' >/dev/null
  [ "$manual" = 1 ] && json -X PUT "$I/v1/admin/clock" -d "{\"today\":\"$start\"}" >/dev/null
  : >"$STATE/demo.env"
  n=0
  for spec in "Kim Minji:GENERAL:ACTIVE" "Lee Seojun:TAX_FREE:ACTIVE" "Park Jiwoo:PREFERENTIAL:ACTIVE" \
              "Choi Yuna:GENERAL:IDENTITY_THEFT" "Jung Hoon:GENERAL:HACKING_VICTIM" "Kang Dohyun:GENERAL:DECEASED"; do
    IFS=: read -r name cat status <<<"$spec"
    n=$((n + 1))
    cid="$(json -X POST "$C/v1/customers" -d "{\"name\":\"$name\",\"tax_category\":\"$cat\"}" | field customer_id)"
    aid="$(json -X POST "$A/v1/accounts" -d "{\"customer_id\":\"$cid\",\"product_code\":\"DEMO-SAVINGS\"}" | field account_id)"
    echo "CUSTOMER_$n=$cid" >>"$STATE/demo.env"; echo "ACCOUNT_$n=$aid" >>"$STATE/demo.env"
    opened="$(curl -sf "$A/v1/accounts/$aid" | field opened_on)"
    [ "$manual" = 1 ] && json -X PUT "$I/v1/admin/clock" -d "{\"today\":\"$today\"}" >/dev/null
    for week in 0 1 2 3; do
      vd="$(date -d "$opened +$((week * 7)) days" +%F)"
      [[ "$vd" > "$today" ]] && break
      amount=$(( (n * 7 + week * 3) * 1000000 ))
      json -X POST "$L/v1/ledger/accounts/$aid/deposits" -H "Idempotency-Key: demo-$aid-$week" \
        -d "{\"amount\":$amount,\"value_date\":\"$vd\"}" >/dev/null
    done
    [ "$manual" = 1 ] && json -X PUT "$I/v1/admin/clock" -d "{\"today\":\"$start\"}" >/dev/null
    [ "$status" != ACTIVE ] && json -X PUT "$C/v1/customers/$cid/status" -d "{\"status\":\"$status\",\"reason\":\"demo\"}" >/dev/null
    echo "[demo] $name ($cat, $status): account $aid"
  done
  # One dormant and one deposit-suspended account for Kim.
  cid="$(grep CUSTOMER_1= "$STATE/demo.env" | cut -d= -f2)"
  dormant="$(json -X POST "$A/v1/accounts" -d "{\"customer_id\":\"$cid\",\"product_code\":\"DEMO-SAVINGS\"}" | field account_id)"
  json -X PUT "$A/v1/accounts/$dormant/status" -d '{"status":"DORMANT"}' >/dev/null
  held="$(json -X POST "$A/v1/accounts" -d "{\"customer_id\":\"$cid\",\"product_code\":\"DEMO-SAVINGS\"}" | field account_id)"
  json -X PUT "$A/v1/accounts/$held/holds" -d '{"deposit_suspended":true,"withdrawal_suspended":false}' >/dev/null
  echo "ACCOUNT_DORMANT=$dormant" >>"$STATE/demo.env"; echo "ACCOUNT_HELD=$held" >>"$STATE/demo.env"
  [ "$manual" = 1 ] && json -X PUT "$I/v1/admin/clock" -d "{\"today\":\"$today\"}" >/dev/null
  echo "[demo] dormant account $dormant, deposit-suspended account $held"
fi

if [ ! -f "$STATE/demo.env" ]; then
  # Loaded by another checkout into the same databases: find the walk-through's accounts again.
  : >"$STATE/demo.env"
  for aid in $(curl -sf "$A/v1/accounts?product_code=DEMO-SAVINGS&limit=100" | grep -o '"account_id":"[^"]*"' | cut -d'"' -f4); do
    acct="$(curl -sf "$A/v1/accounts/$aid")"
    name="$(curl -sf "$C/v1/customers/$(echo "$acct" | field customer_id)" | field name)"
    case "$name" in
      "Kim Minji") echo "$acct" | grep -q '"status":"ACTIVE"' && echo "$acct" | grep -q '"deposit_suspended":false' \
                     && echo "ACCOUNT_1=$aid" >>"$STATE/demo.env"
                   echo "$acct" | grep -q '"deposit_suspended":true' && echo "ACCOUNT_HELD=$aid" >>"$STATE/demo.env" ;;
      "Choi Yuna") echo "ACCOUNT_4=$aid" >>"$STATE/demo.env" ;;
    esac
  done
fi
# shellcheck disable=SC1091
. "$STATE/demo.env"
KIM="$(curl -sf "$A/v1/accounts/$ACCOUNT_1" | field customer_id)"
# An hour: the longest lifetime the gateway accepts by default (AUTH_MAX_TOKEN_LIFETIME_SECS).
token() { "${BANKCTL:-bankctl}" token --key "${ISSUER_KEY:-$STATE/auth/issuer.key.pem}" --minutes 60 "$@"; }
{
  echo "KIM_TOKEN=$(token --sub "$KIM" --scope customer)"
  echo "OPS_TOKEN=$(token --sub ops-demo --scope 'ops:read ops:write')"
  echo "BATCH_TOKEN=$(token --sub payout-job --scope batch)"
} >"$STATE/demo-tokens.env"
cat <<MSG

The gateway (the one public entry: bearer tokens, each customer sees only their own accounts):
  $G
Demo tokens (an hour, the gateway's longest by default; signed by the local issuer in $STATE/auth):
  . $STATE/demo-tokens.env     # sets KIM_TOKEN (customer Kim), OPS_TOKEN (ops:read ops:write), BATCH_TOKEN
  ${BANKCTL:-bankctl} token --key ${ISSUER_KEY:-$STATE/auth/issuer.key.pem} --sub $KIM --scope customer   # a fresh one

Walk-through through the gateway (Kim's account $ACCOUNT_1):
  curl -s -H "Authorization: Bearer \$KIM_TOKEN" $G/v1/me/accounts
  curl -s -H "Authorization: Bearer \$KIM_TOKEN" $G/v1/me/accounts/$ACCOUNT_1/interest          # estimate
  curl -s -X POST -H "Authorization: Bearer \$KIM_TOKEN" -H 'Idempotency-Key: demo-1' $G/v1/me/accounts/$ACCOUNT_1/payouts
  curl -s -X POST -H "Authorization: Bearer \$KIM_TOKEN" -H 'Idempotency-Key: demo-1' $G/v1/me/accounts/$ACCOUNT_1/payouts   # same answer
  curl -s -X POST -H "Authorization: Bearer \$KIM_TOKEN" -H 'Idempotency-Key: demo-2' $G/v1/me/accounts/$ACCOUNT_1/payouts   # ALREADY_PAID_TODAY
  curl -s -H "Authorization: Bearer \$KIM_TOKEN" $G/v1/me/accounts/$ACCOUNT_1/payouts          # history
  curl -s -H "Authorization: Bearer \$KIM_TOKEN" $G/v1/me/accounts/$ACCOUNT_4/interest          # Choi's account: 404 for Kim
  curl -s $G/v1/me/accounts                                                          # no token: 401
  curl -s -H "Authorization: Bearer \$OPS_TOKEN" "$G/v1/ops/tax/withholdings?account_id=$ACCOUNT_1"
  curl -s -H "Authorization: Bearer \$OPS_TOKEN" "$G/v1/ops/tax/reports/monthly?month=$(date +%Y-%m)"
  curl -s -X POST -H "Authorization: Bearer \$BATCH_TOKEN" -H 'content-type: application/json' $G/v1/ops/payout-runs -d '{}'

The services behind it (internal: the gateway's upstreams and ops tooling, not for the channel).
They answer only callers presenting a service credential signed by a key they trust, and each
caller only on the routes granted to it; ops tools sign with the ops key ($STATE/credentials):
  export SERVICE_KEY_FILE=$STATE/credentials/ops.key.pem SERVICE_TRUST_FILE=$STATE/credentials/trust.jwks.json
  # bankctl and the bench read them; with curl, a credential for the service called (5 minutes):
  curl -s -H "Authorization: Bearer \$(bankctl credentials token --audience accounting)" $L/v1/ledger/accounts/$ACCOUNT_1/balance
  customer      $C      (OpenAPI: $C/openapi.json)
  account-info  $A
  accounting    $L
  interest      $I      e.g. curl -s -H "Authorization: Bearer \$(bankctl credentials token --audience interest)" $I/v1/interest/accounts/$ACCOUNT_4   (restricted: payable false)
  tax-consumer  $T
  metrics at /metrics (with a credential, the gateway's too), health at /health/live and /health/ready on each (open).
MSG
if [ "$manual" = 1 ]; then
  echo "  curl -s -X PUT -H \"Authorization: Bearer \$OPS_TOKEN\" -H 'content-type: application/json' $G/v1/ops/clock -d '{\"today\":\"$(date -d "$today +1 day" +%F)\"}'   # live through a day"
fi

LC="${LEGACY_CORE_URL:-}"
if [ -n "$LC" ]; then
  ops() { command curl -sS -H "Authorization: Bearer $(grep OPS_TOKEN= "$STATE/demo-tokens.env" | cut -d= -f2)" "$@"; }
  kim() { command curl -sS -H "Authorization: Bearer $(grep KIM_TOKEN= "$STATE/demo-tokens.env" | cut -d= -f2)" "$@"; }
  day="$(curl -sf "$I/v1/interest/accounts/$ACCOUNT_1" | field business_date)"
  ACCOUNT_HELD="${ACCOUNT_HELD:-$ACCOUNT_1}"
  echo
  echo "Moving customers off the legacy core (the simulator at $LC; docs/migration.md). Shown live:"
  echo "1. Shadow verification: the simulator ignores deposit holds; Kim asks for the estimate of her"
  echo "   deposit-suspended account; the interest service compares it with the legacy core's after answering."
  json -X PUT "$LC/legacy/v1/admin/deviations" -d '{"hold_ignored":true}' >/dev/null
  kim -o /dev/null "$G/v1/me/accounts/$ACCOUNT_HELD/interest"
  for _ in $(seq 1 20); do ops "$G/v1/ops/shadow-mismatches?account_id=$ACCOUNT_HELD&limit=1" | grep -q mismatch_id && break; sleep 0.25; done
  echo "   \$ curl -H \"Authorization: Bearer \$OPS_TOKEN\" \"$G/v1/ops/shadow-mismatches?account_id=$ACCOUNT_HELD\""
  ops "$G/v1/ops/shadow-mismatches?account_id=$ACCOUNT_HELD&limit=1" | sed 's/^/   /'; echo
  echo "2. Batch verification of every account (estimate mode, nothing paid), the simulator also rounding taxes its own way:"
  json -X PUT "$LC/legacy/v1/admin/deviations" -d '{"hold_ignored":true,"tax_rounding":true}' >/dev/null
  echo "   \$ bankctl verify --date $day --all --out $STATE/verify-$day"
  ACCOUNT_INFO_URL="$A" CUSTOMER_URL="$C" INTEREST_URL="$I" LEGACY_CORE_URL="$LC" \
    "${BANKCTL:-bankctl}" verify --date "$day" --all --no-progress --out "$STATE/verify-$day" | sed 's/^/   /' || true
  json -X PUT "$LC/legacy/v1/admin/deviations" -d '{}' >/dev/null
  echo "   (deviations switched off again: PUT $LC/legacy/v1/admin/deviations {})"
  echo "3. A rollout step: the team (Kim) and 10% of customers on the new system, the rest on the legacy core:"
  echo "   \$ curl -X PUT -H \"Authorization: Bearer \$OPS_TOKEN\" $G/v1/ops/rollout -d '{\"percent\":10,\"team\":[\"$KIM\"]}'"
  ops -X PUT -H 'content-type: application/json' "$G/v1/ops/rollout" \
    -d "{\"percent\":10,\"team\":[\"$KIM\"],\"reason\":\"demo: team and 10%\"}" | sed 's/^/   /'; echo
  echo "   \$ curl -H \"Authorization: Bearer \$OPS_TOKEN\" $G/v1/ops/rollout/customers/$KIM"
  ops "$G/v1/ops/rollout/customers/$KIM" | sed 's/^/   /'; echo
  echo "   Kim's estimate is now served by: $(kim -D - -o /dev/null "$G/v1/me/accounts/$ACCOUNT_1/interest" | tr -d '\r' | sed -n 's/^x-served-by: //Ip')"
  cat <<MIG
   Raise it step by step (monotone: 20% keeps the first 10%), or send everyone back at once:
   curl -X PUT -H "Authorization: Bearer \$OPS_TOKEN" -H 'content-type: application/json' $G/v1/ops/rollout -d '{"percent":0,"kill_switch":true}'
   curl -X PUT -H "Authorization: Bearer \$OPS_TOKEN" -H 'content-type: application/json' $G/v1/ops/rollout -d '{"percent":100}'
MIG
fi
echo
echo "Stop everything with: bash deploy/down.sh"

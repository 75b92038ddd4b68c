//! What the OpenAPI documents say about what a service accepts beyond the shape of its types
//! (issue 33, item 7: the document tells the whole truth, schemathesis checks it with every check):
//!
//! - **No NUL anywhere.** PostgreSQL text cannot hold U+0000, so the platform refuses it in every
//!   string of every body, unknown fields and their names included, and in every query value.
//!   [`whole_truth`] gives every string without a pattern of its own [`NO_NUL`], every object
//!   `propertyNames` without NUL and, where it takes any extra field, extra fields of
//!   [`NUL_FREE`] (any JSON value without NUL, a recursive schema). A pattern of this crate
//!   never matches NUL.
//! - **Dates are real dates** (`YYYY-MM-DD`, leap years counted): `format: date` alone is an
//!   annotation in JSON Schema 2020-12, so every `format: date` string gets [`DATE`] too.
//! - **Rules between fields** that a combinator can say (a PATCH changes something, a restriction
//!   has a reason, a replay names its letters) are added to their types' schemas here.
//!
//! Rules no schema can say — `to` not before `from`, two ids that must differ, a date relative to
//! today, a resource that must exist, an amount written as a JSON integer (JSON Schema counts
//! `100.0` as an integer; money never travels as a float) — are in the operations' descriptions,
//! and the fuzz test (tests/tests/fuzz.rs) exempts exactly those operations, by name, from
//! schemathesis' positive-data check.

use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::{OpenApi, PathItem, Ref, RefOr};
use utoipa::ToSchema;

use crate::{AmendCustomer, ChangeCustomerStatus, ReplayDeadLetters};

/// Text without NUL.
pub const NO_NUL: &str = r"^[^\x00]*$";

/// Text without NUL with at least one character that is not white space as Rust's `str::trim`
/// counts it (the characters are listed: `\s` differs between regex engines).
pub const NOT_BLANK: &str =
    r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$";

/// A calendar date `YYYY-MM-DD` (years 0000 to 9999, 29 February only in leap years).
pub const DATE: &str = r"^(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)$";

/// A wall-clock time `HH:MM[:SS[.fraction]]`.
pub const TIME: &str = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,9})?)?$";

/// A percentage from 0 to 100 with at most 4 decimals ("2.35", "14", "100").
pub const PERCENT: &str = r"^(?:0?[0-9]{1,2}(?:\.[0-9]{1,4})?|100(?:\.0{1,4})?)$";

/// The component every extra field of a body must match: any JSON value without NUL.
pub const NUL_FREE: &str = "NulFree";

/// Makes `doc` (a service's own operations) say what the service accepts: see the module's doc.
/// The platform's operations (the manual clock) are merged later; their types say it themselves.
pub fn whole_truth(mut doc: OpenApi) -> OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    refine::<AmendCustomer>(components, amend_customer_rules());
    refine::<ChangeCustomerStatus>(components, vec![status_reason_rule(false)]);
    refine::<ReplayDeadLetters>(components, replay_rule());
    for schema in components.schemas.values_mut() {
        truthful(schema);
    }
    components.schemas.insert(NUL_FREE.into(), nul_free());
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            for p in op.parameters.iter_mut().flatten() {
                if let Some(schema) = p.schema.as_mut() {
                    truthful(schema);
                }
            }
            for content in op.request_body.iter_mut().flat_map(|b| b.content.values_mut()) {
                if let Some(schema) = content.schema.as_mut() {
                    truthful(schema);
                }
            }
        }
    }
    doc
}

/// Every operation of a path, whatever its method (the platform's document walks them too).
pub fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn has(t: &SchemaType, wanted: Type) -> bool {
    match t {
        SchemaType::Type(t) => *t == wanted,
        SchemaType::Array(ts) => ts.contains(&wanted),
        SchemaType::AnyValue => false,
    }
}

fn no_nul_text() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL))
}

fn nul_free_ref() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(NUL_FREE))
}

/// Adds the patterns and the extra-field rule to `schema` and everything inside it (also for the
/// types the platform's own operations use: their document is merged after [`whole_truth`]).
pub(crate) fn truthful(schema: &mut RefOr<Schema>) {
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(o) => {
            if has(&o.schema_type, Type::Object) {
                if o.property_names.is_none() {
                    o.property_names = Some(Box::new(no_nul_text().build().into()));
                }
                let any_extra =
                    matches!(o.additional_properties.as_deref(), None | Some(AdditionalProperties::FreeForm(true)));
                if any_extra {
                    o.additional_properties = Some(Box::new(AdditionalProperties::RefOr(nul_free_ref())));
                }
            }
            if has(&o.schema_type, Type::String) && o.enum_values.is_none() && o.pattern.is_none() {
                match &o.format {
                    Some(SchemaFormat::KnownFormat(KnownFormat::Date)) => o.pattern = Some(DATE.into()),
                    None => o.pattern = Some(NO_NUL.into()),
                    // uuid, date-time: the format is the rule (and has no NUL).
                    Some(_) => {}
                }
            }
            for p in o.properties.values_mut() {
                truthful(p);
            }
            if let Some(AdditionalProperties::RefOr(extra)) = o.additional_properties.as_deref_mut() {
                truthful(extra);
            }
        }
        Schema::Array(a) => {
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(items) = &mut a.items {
                truthful(items);
            }
        }
        Schema::AllOf(s) => s.items.iter_mut().for_each(truthful),
        Schema::AnyOf(s) => s.items.iter_mut().for_each(truthful),
        Schema::OneOf(s) => s.items.iter_mut().for_each(truthful),
        _ => {}
    }
}

/// Any JSON value without NUL in a string or a name, however deep.
fn nul_free() -> RefOr<Schema> {
    let object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(no_nul_text()))
        .additional_properties(Some(AdditionalProperties::RefOr(nul_free_ref())));
    AnyOfBuilder::new()
        .description(Some(
            "Any JSON value without NUL (U+0000) in a string or a property name: what an extra field of a \
             body may hold (it is ignored; PostgreSQL text cannot hold NUL, so the platform refuses it anywhere)",
        ))
        .item(ObjectBuilder::new().schema_type(SchemaType::Array(vec![Type::Null, Type::Boolean, Type::Number])))
        .item(no_nul_text())
        .item(ArrayBuilder::new().items(nul_free_ref()))
        .item(object)
        .into()
}

/// `T`'s schema, and the rules between its fields (each an `anyOf`: one branch must hold).
fn refine<T: ToSchema>(components: &mut utoipa::openapi::Components, rules: Vec<Schema>) {
    let name = T::name().into_owned();
    let Some(fields) = components.schemas.remove(&name) else { return };
    let mut all = AllOfBuilder::new().item(fields);
    for rule in rules {
        all = all.item(rule);
    }
    components.schemas.insert(name, all.into());
}

/// A branch that holds when `property` is present and matches `schema`.
fn present(property: &str, schema: impl Into<RefOr<Schema>>) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::AnyValue).required(property).property(property, schema)
}

fn component<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

/// A status other than ACTIVE needs a reason that is not blank (`optional`: the status may be
/// absent or null, as in a PATCH).
fn status_reason_rule(optional: bool) -> Schema {
    let mut statuses = vec![serde_json::json!("ACTIVE")];
    if optional {
        statuses.insert(0, serde_json::Value::Null);
    }
    let active = ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .property("status", ObjectBuilder::new().schema_type(SchemaType::AnyValue).enum_values(Some(statuses)));
    let reason = ObjectBuilder::new().schema_type(Type::String).pattern(Some(NOT_BLANK));
    AnyOfBuilder::new().item(active).item(present("reason", reason)).into()
}

/// A PATCH changes something: a status or a tax category (not null); and a status other than
/// ACTIVE comes with its reason.
fn amend_customer_rules() -> Vec<Schema> {
    let changes = AnyOfBuilder::new()
        .item(present("status", component::<domain::CustomerStatus>()))
        .item(present("tax_category", component::<domain::TaxCategory>()));
    vec![changes.into(), status_reason_rule(true)]
}

/// A replay names its letters (`ids`, possibly empty) or asks for all of them (`all: true`).
fn replay_rule() -> Vec<Schema> {
    let ids = present("ids", ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Integer)));
    let all = present("all", ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([true])));
    vec![AnyOfBuilder::new().item(ids).item(all).into()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    fn matches(pattern: &str, text: &str) -> bool {
        // The patterns use only what ECMA-262, Python's `re` and the `regex` crate read alike.
        regex::Regex::new(pattern).unwrap().is_match(text)
    }

    #[test]
    fn every_date_of_four_centuries_matches_its_pattern_and_no_other_text_does() {
        let date = regex::Regex::new(DATE).unwrap();
        let mut day = chrono::NaiveDate::from_ymd_opt(1999, 1, 1).unwrap();
        let mut days = 0;
        while day.year() < 2401 {
            assert!(date.is_match(&day.format("%Y-%m-%d").to_string()), "{day}");
            day = day.succ_opt().unwrap();
            days += 1;
        }
        assert_eq!(days, 146_097 + 365 + 366);
        assert!(date.is_match("0000-02-29") && date.is_match("9999-12-31"));
        for text in
            ["", "2024-02-30", "2023-02-29", "1900-02-29", "2100-02-29", "2024-13-01", "2024-00-10", "2024-01-00"]
        {
            assert!(!date.is_match(text), "{text}");
            assert!(text.parse::<chrono::NaiveDate>().is_err(), "{text}");
        }
    }

    #[test]
    fn a_time_matching_its_pattern_is_read() {
        for text in ["00:00", "23:59", "09:30:00", "23:59:59.999999999", "12:00:01.5"] {
            assert!(matches(TIME, text), "{text}");
            assert!(text.parse::<chrono::NaiveTime>().is_ok(), "{text}");
        }
        for text in ["", "24:00", "9:30", "12:60", "12:00:00.", "12:00:00.1234567890"] {
            assert!(!matches(TIME, text), "{text}");
        }
    }

    #[test]
    fn the_text_patterns_refuse_nul_and_blank_as_the_handlers_do() {
        for pattern in [NO_NUL, NOT_BLANK, DATE, TIME, PERCENT] {
            assert!(!matches(pattern, "1\u{0}"), "{pattern}");
        }
        for blank in ["", " ", "\t\n", "\u{85}\u{a0}\u{3000}", "\u{2000}\u{200a}\u{2028}"] {
            assert!(blank.trim().is_empty());
            assert!(!matches(NOT_BLANK, blank), "{blank:?}");
        }
        for text in ["a", " a ", "\u{feff}", "\u{1c}"] {
            assert!(!text.trim().is_empty());
            assert!(matches(NOT_BLANK, text), "{text:?}");
        }
    }

    #[test]
    fn a_percentage_matching_its_pattern_is_a_rate_of_at_most_100() {
        for text in ["0", "2.35", "14", "099.9999", "100", "100.0000", "007"] {
            assert!(matches(PERCENT, text), "{text}");
            let rate = domain::AnnualRate::parse_percent(text).unwrap();
            assert!(rate.millionths() <= 1_000_000, "{text}");
        }
        for text in ["100.0001", "101", "2.", ".5", "1.23456", "-1", "1e2"] {
            assert!(!matches(PERCENT, text), "{text}");
        }
    }

    #[test]
    fn the_types_carry_these_patterns() {
        use utoipa::PartialSchema;
        let json = |s: RefOr<Schema>| serde_json::to_value(s).unwrap();
        let cases = [
            (json(crate::CreateCustomer::schema()), "/properties/name/pattern", NOT_BLANK),
            (json(crate::CreateProduct::schema()), "/properties/name/pattern", NOT_BLANK),
            (json(crate::ScheduleTaxRule::schema()), "/properties/reason/pattern", NOT_BLANK),
            (json(crate::BandBody::schema()), "/properties/rate/pattern", PERCENT),
            (json(crate::TaxComponentBody::schema()), "/properties/rate/pattern", PERCENT),
            (json(crate::SetClock::schema()), "/properties/time/pattern", TIME),
            (json(crate::SetClock::schema()), "/properties/today/pattern", DATE),
            (json(crate::SetClock::schema()), "/additionalProperties/$ref", "#/components/schemas/NulFree"),
        ];
        for (schema, pointer, want) in cases {
            assert_eq!(schema.pointer(pointer).and_then(|v| v.as_str()), Some(want), "{pointer} of {schema}");
        }
    }

    #[test]
    fn a_document_says_no_nul_dates_and_the_rules_between_fields() {
        use utoipa::openapi::{ComponentsBuilder, OpenApiBuilder};
        let components = ComponentsBuilder::new()
            .schema_from::<crate::AmendCustomer>()
            .schema_from::<crate::ChangeCustomerStatus>()
            .schema_from::<crate::ReplayDeadLetters>()
            .schema_from::<crate::RateScheduleBody>()
            .build();
        let doc = whole_truth(OpenApiBuilder::new().components(Some(components)).build());
        let doc = serde_json::to_value(doc).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["RateScheduleBody"]["properties"]["effective_from"]["pattern"], DATE);
        assert_eq!(schemas["RateScheduleBody"]["propertyNames"]["pattern"], NO_NUL);
        assert_eq!(schemas["RateScheduleBody"]["additionalProperties"]["$ref"], "#/components/schemas/NulFree");
        assert_eq!(schemas["NulFree"]["anyOf"].as_array().unwrap().len(), 4);
        let amend = schemas["AmendCustomer"]["allOf"].as_array().unwrap();
        assert_eq!(amend[0]["additionalProperties"], false, "the PATCH takes no unknown field");
        assert_eq!(amend[0]["properties"]["reason"]["pattern"], NO_NUL);
        assert_eq!(amend[1]["anyOf"][0]["required"][0], "status");
        assert_eq!(amend[1]["anyOf"][1]["required"][0], "tax_category");
        assert_eq!(amend[2]["anyOf"][0]["properties"]["status"]["enum"], serde_json::json!([null, "ACTIVE"]));
        assert_eq!(amend[2]["anyOf"][1]["properties"]["reason"]["pattern"], NOT_BLANK);
        let status = schemas["ChangeCustomerStatus"]["allOf"].as_array().unwrap();
        assert_eq!(status[1]["anyOf"][0]["properties"]["status"]["enum"], serde_json::json!(["ACTIVE"]));
        let replay = schemas["ReplayDeadLetters"]["allOf"].as_array().unwrap();
        assert_eq!(replay[1]["anyOf"][1]["properties"]["all"]["enum"], serde_json::json!([true]));
    }
}

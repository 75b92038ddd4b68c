//! OpenAPI schemas of the domain types whose wire form is not their Rust shape (feature
//! `openapi`): an [`Amount`] is a bounded positive integer, a [`Withheld`] the five flat fields.

use std::borrow::Cow;

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::{Amount, Withheld, MAX_AMOUNT};

fn won(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
        .description(Some(description))
}

impl PartialSchema for Amount {
    fn schema() -> RefOr<Schema> {
        won("whole won, 1 to 10^15").minimum(Some(1)).maximum(Some(MAX_AMOUNT as f64)).into()
    }
}

impl ToSchema for Amount {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Amount")
    }
}

impl PartialSchema for Withheld {
    fn schema() -> RefOr<Schema> {
        let fields = [
            ("gross", "interest before tax, won"),
            ("income_tax", "won"),
            ("local_tax", "won"),
            ("rural_special_tax", "won"),
            ("net", "gross minus the taxes, won"),
        ];
        let mut o = ObjectBuilder::new().description(Some("A gross amount and the taxes withheld from it"));
        for (name, description) in fields {
            o = o.property(name, won(description).minimum(Some(0))).required(name);
        }
        o.into()
    }
}

impl ToSchema for Withheld {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Withheld")
    }
}

//! The error type of the schema module.

/// Why a manifest, identifier or command-line form was refused.
///
/// Every message names the field (as a JSON path such as `app.ports[0].port`) and the rule
/// that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The bytes are not well-formed JSON.
    #[error("malformed JSON at line {line}, column {column}: {msg}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description.
        msg: String,
    },
    /// A JSON value has the wrong type.
    #[error("{field}: expected {expected}")]
    Type {
        /// Where the value sits.
        field: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// A value does not follow the syntax of its type.
    #[error("invalid {what} {value:?}: {rule}")]
    Invalid {
        /// What the value is (e.g. `image name`).
        what: String,
        /// The offending value.
        value: String,
        /// The rule it breaks.
        rule: String,
    },
    /// A structural rule is broken (missing field, duplicate, conflict...).
    #[error("{field}: {rule}")]
    Rule {
        /// Where the problem is.
        field: String,
        /// The rule that is broken.
        rule: String,
    },
}

impl SchemaError {
    pub(crate) fn rule(field: impl Into<String>, rule: impl Into<String>) -> Self {
        SchemaError::Rule {
            field: field.into(),
            rule: rule.into(),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, value: &str, rule: impl Into<String>) -> Self {
        SchemaError::Invalid {
            what: what.into(),
            value: value.to_string(),
            rule: rule.into(),
        }
    }

    /// Replaces the description of the value in an [`SchemaError::Invalid`] error.
    pub(crate) fn described_as(self, what: &str) -> Self {
        match self {
            SchemaError::Invalid { value, rule, .. } => SchemaError::Invalid {
                what: what.to_string(),
                value,
                rule,
            },
            other => other,
        }
    }

    pub(crate) fn from_json(e: &serde_json::Error) -> Self {
        SchemaError::Json {
            line: e.line(),
            column: e.column(),
            msg: e.to_string(),
        }
    }
}

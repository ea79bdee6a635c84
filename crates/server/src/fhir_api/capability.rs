//! What the FHIR API supports, as one table, and the CapabilityStatement
//! generated from it. The search parser ([`super::search`]) accepts exactly
//! the parameters, sorts and includes listed here.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::fhir_json;

/// What the server supports for one resource type.
pub struct Capability {
    pub resource: &'static str,
    /// CapabilityStatement interaction codes.
    pub interactions: &'static [&'static str],
    /// Search parameters: name and FHIR search type.
    pub search: &'static [(&'static str, &'static str)],
    /// `_sort` keys (each also allowed with `-` for descending).
    pub sorts: &'static [&'static str],
    /// `_include` values.
    pub includes: &'static [&'static str],
    /// `create` honours `If-None-Exist`.
    pub conditional_create: bool,
}

impl Capability {
    pub fn supports(&self, interaction: &str) -> bool {
        self.interactions.contains(&interaction)
    }

    pub fn param_type(&self, name: &str) -> Option<&'static str> {
        self.search
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
    }
}

/// Every resource type served, its interactions and search parameters.
pub const CAPABILITIES: &[Capability] = &[
    Capability {
        resource: "Patient",
        interactions: &[
            "read",
            "vread",
            "update",
            "history-instance",
            "create",
            "search-type",
        ],
        search: &[
            ("_id", "token"),
            ("identifier", "token"),
            ("family", "string"),
            ("given", "string"),
            ("name", "string"),
            ("birthdate", "date"),
            ("gender", "token"),
        ],
        sorts: &["_id", "_lastUpdated", "birthdate"],
        includes: &[],
        conditional_create: true,
    },
    Capability {
        resource: "ServiceRequest",
        interactions: &["read", "update", "create", "search-type"],
        search: &[
            ("_id", "token"),
            ("patient", "reference"),
            ("subject", "reference"),
            ("status", "token"),
            ("identifier", "token"),
            ("code", "token"),
            ("authored", "date"),
        ],
        sorts: &["_id", "_lastUpdated", "authored"],
        includes: &["ServiceRequest:patient", "ServiceRequest:subject"],
        conditional_create: true,
    },
    Capability {
        resource: "Appointment",
        interactions: &["read", "update", "create", "search-type"],
        search: &[
            ("_id", "token"),
            ("patient", "reference"),
            ("actor", "reference"),
            ("date", "date"),
            ("status", "token"),
        ],
        sorts: &["_id", "_lastUpdated", "date"],
        includes: &["Appointment:patient", "Appointment:actor"],
        conditional_create: false,
    },
    Capability {
        resource: "ImagingStudy",
        interactions: &["read", "create", "search-type"],
        search: &[
            ("_id", "token"),
            ("patient", "reference"),
            ("subject", "reference"),
            ("started", "date"),
            ("modality", "token"),
        ],
        sorts: &["_id", "_lastUpdated", "started"],
        includes: &[],
        conditional_create: false,
    },
    Capability {
        resource: "Observation",
        interactions: &["read", "search-type"],
        search: &[
            ("_id", "token"),
            ("patient", "reference"),
            ("subject", "reference"),
            ("code", "token"),
            ("date", "date"),
            ("category", "token"),
        ],
        sorts: &["_id", "date"],
        includes: &[],
        conditional_create: false,
    },
    Capability {
        resource: "DiagnosticReport",
        interactions: &["read", "search-type"],
        search: &[
            ("_id", "token"),
            ("patient", "reference"),
            ("subject", "reference"),
            ("code", "token"),
            ("date", "date"),
            ("category", "token"),
        ],
        sorts: &["_id", "date"],
        includes: &[],
        conditional_create: false,
    },
    Capability {
        resource: "Device",
        interactions: &["read", "search-type"],
        search: &[("_id", "token"), ("identifier", "token")],
        sorts: &["_id"],
        includes: &[],
        conditional_create: false,
    },
];

/// The row of `resource`.
pub fn of(resource: &str) -> Option<&'static Capability> {
    CAPABILITIES.iter().find(|c| c.resource == resource)
}

/// `GET /fhir/R4/metadata`: no token needed (the spec lets clients discover
/// what the server does and how to authenticate).
pub async fn metadata() -> Response {
    fhir_json(StatusCode::OK, &statement())
}

/// The CapabilityStatement for [`CAPABILITIES`].
pub fn statement() -> Value {
    let resources: Vec<Value> = CAPABILITIES
        .iter()
        .map(|c| {
            let mut r = json!({
                "type": c.resource,
                "interaction": c.interactions.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
                "versioning": "versioned",
                "readHistory": c.supports("vread"),
                "updateCreate": false,
                "conditionalCreate": c.conditional_create,
                "searchParam": c.search.iter().map(|(name, t)| json!({"name": name, "type": t})).collect::<Vec<_>>(),
            });
            if !c.includes.is_empty() {
                r["searchInclude"] = json!(c.includes);
            }
            r
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-03",
        "kind": "instance",
        "software": {"name": "medrelay", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "medrelay FHIR R4 API"},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR"
                }]}],
                "description": "OAuth 2.0 client credentials from /oauth/token with SMART v1 system scopes (system/Patient.read, system/*.write, ...)"
            },
            "resource": resources,
            "searchParam": [
                {"name": "_count", "type": "number"},
                {"name": "_offset", "type": "number"},
                {"name": "_sort", "type": "string"},
                {"name": "_summary", "type": "token"},
                {"name": "_total", "type": "token"},
                {"name": "_include", "type": "special"},
                {"name": "_format", "type": "token"}
            ],
        }],
    })
}

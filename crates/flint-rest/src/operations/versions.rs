//! `$versions` (system level, GET or POST): the FHIR versions this server supports and the
//! one it uses by default, as a `Parameters` resource (OperationDefinition
//! `CapabilityStatement-versions`). Flint serves R4 only.

use super::{Level, OpFuture, Operation, Target};
use crate::api::{Body, FhirRequest, Reply};
use crate::context::Ctx;
use serde_json::json;

/// The registration of `$versions`.
pub const OPERATION: Operation = Operation {
    name: "versions",
    definition: "http://hl7.org/fhir/OperationDefinition/CapabilityStatement-versions",
    levels: &[Level::System],
    types: &[],
    methods: &["GET", "POST"],
    run,
};

/// The version this server supports, in the operation's `major.minor` form.
const VERSION: &str = "4.0";

fn run<'a>(_ctx: &'a Ctx, _target: Target<'a>, _req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(async {
        Ok(Reply::new(
            200,
            Body::Resource(json!({
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "version", "valueCode": VERSION},
                    {"name": "default", "valueCode": VERSION},
                ]
            })),
        ))
    })
}

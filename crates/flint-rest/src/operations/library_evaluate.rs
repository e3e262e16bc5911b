//! `Library/$evaluate` (type and instance level, GET or POST; OperationDefinition
//! `cpg-library-evaluate` of FHIR Clinical Reasoning): evaluates the defines of a stored CQL
//! Library with the state's [`flint_measure::CqlService`] and answers a `Parameters`
//! resource with one parameter per define, named like the define (a list: repeated
//! parameters of that name; the value shapes are those of `$cql`, see
//! [`flint_measure::cql`]).
//!
//! Parameters (query parameters of a GET or POST, a `Parameters` body of a POST):
//!
//! * `url` (type level, 1..1): the Library's canonical url, optionally `url|version`; the
//!   instance level evaluates `Library/[id]`.
//! * `subject` (`Patient/123` or `123`): evaluates in the Patient context of that patient;
//!   without it the context is unfiltered.
//! * `expression` (0..*): the names of the defines to evaluate, in this order; by default
//!   every define of the library, in its order.
//! * `parameters` (POST, a nested `Parameters` resource): values of the library's
//!   parameters by name.
//! * `data`, `dataEndpoint`, `contentEndpoint`, `terminologyEndpoint`, `useServerData`,
//!   `prefetchData`: accepted and ignored.
//!
//! Errors: 400 `invalid` for a missing `url`, an unknown parameter or define, a syntax or
//! semantic error in the library or its includes (an unknown identifier or function, a type
//! mismatch: the library, its version, line and column in the message, `expression`
//! `Library.content`); 404 for
//! an unknown Library or subject; 422 `processing` for an evaluation error or a Library
//! without `text/cql` content; 503 for a storage fault and for an evaluation longer than
//! the limit; 422 `not-supported` when no CQL engine is configured.

use super::cql::{evaluation, limited, read};
use super::{Level, OpFuture, Operation, Target};
use crate::api::{Body, FhirRequest, Reply};
use crate::context::Ctx;
use crate::outcome::{FhirError, FhirResult};
use flint_measure::LibrarySelector;

/// The registration of `Library/$evaluate`.
pub const OPERATION: Operation = Operation {
    name: "evaluate",
    definition: "http://hl7.org/fhir/uv/cpg/OperationDefinition/cpg-library-evaluate",
    levels: &[Level::Type, Level::Instance],
    types: &["Library"],
    methods: &["GET", "POST"],
    run,
};

fn run<'a>(ctx: &'a Ctx, target: Target<'a>, req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(evaluate(ctx, target, req))
}

async fn evaluate(ctx: &Ctx, target: Target<'_>, req: &FhirRequest) -> FhirResult<Reply> {
    let input = read(req, &["url", "subject", "expression"], "evaluate")?;
    let selector = match target {
        Target::Instance(_, id) => LibrarySelector::Id(id.to_string()),
        _ => match input.one("url")? {
            Some((url, _)) => LibrarySelector::Canonical(url.to_string()),
            None => {
                return Err(FhirError::invalid("Missing required parameter `url`.").at("url"));
            }
        },
    };
    let subject = input.subject()?;
    let names: Vec<String> = input
        .all("expression")
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let expressions = (!names.is_empty()).then_some(names.as_slice());
    let setup = evaluation(ctx, "evaluate")?;
    let db = ctx.read_db().await?;
    let results = limited(
        setup,
        setup
            .service
            .evaluate_library(&db, &selector, subject.as_ref(), expressions, &input.named),
    )
    .await?
    .map_err(|e| input.error(e, "url"))?;
    Ok(Reply::new(
        200,
        Body::Resource(flint_measure::cql::parameters(&results)),
    ))
}

//! Strict request headers: the headers whose meaning depends on there being exactly one value
//! (`x-tenant-id`, `Idempotency-Key`, `x-forwarded-client-cert`) are refused with 400 when a
//! request repeats them, instead of silently using the first. (Trace headers are the exception:
//! a repeated one is ignored as invalid, never an error — see the `trace-context` crate.)

use http::{HeaderMap, HeaderValue, StatusCode};

use crate::problem::Problem;

/// Problem type slug of a repeated single-valued header.
pub const DUPLICATE_HEADER: &str = "duplicate-header";

/// The one value of `name`, `None` when absent, or a 400 problem when it appears more than once.
pub fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a HeaderValue>, Problem> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            DUPLICATE_HEADER,
            "Duplicate header",
        )
        .detail(format!("the `{name}` header must appear at most once"))
        .with("header", name));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_or_none_is_fine_two_are_refused() {
        let mut h = HeaderMap::new();
        assert!(matches!(single(&h, "x-tenant-id"), Ok(None)));
        h.append("x-tenant-id", HeaderValue::from_static("tenant-a"));
        assert!(matches!(single(&h, "x-tenant-id"), Ok(Some(v)) if v == "tenant-a"));
        h.append("x-tenant-id", HeaderValue::from_static("tenant-a"));
        let problem = single(&h, "x-tenant-id").unwrap_err();
        assert_eq!(problem.status, 400);
        assert_eq!(problem.slug(), Some(DUPLICATE_HEADER));
    }
}

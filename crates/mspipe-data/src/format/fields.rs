//! Field parsers shared by the readers: each returns the typed [`Problem`] for a bad value.

use crate::Problem;

/// A node id: a non-negative integer.
pub(crate) fn id(field: &str, text: &str) -> Result<u64, Problem> {
    let t = text.trim();
    t.parse::<u64>().map_err(|_| {
        let negative = t.starts_with('-') && t[1..].parse::<u64>().is_ok();
        let owned = (field.to_string(), t.to_string());
        if negative {
            Problem::NegativeId {
                field: owned.0,
                value: owned.1,
            }
        } else {
            Problem::NotNumeric {
                field: owned.0,
                value: owned.1,
            }
        }
    })
}

/// A finite f64 (timestamps).
pub(crate) fn finite_f64(field: &str, text: &str) -> Result<f64, Problem> {
    let t = text.trim();
    let v: f64 = t.parse().map_err(|_| Problem::NotNumeric {
        field: field.to_string(),
        value: t.to_string(),
    })?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Problem::NonFinite {
            field: field.to_string(),
            value: t.to_string(),
        })
    }
}

/// A finite f32 (features, labels).
pub(crate) fn finite_f32(field: &str, text: &str) -> Result<f32, Problem> {
    let v = finite_f64(field, text)? as f32;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Problem::NonFinite {
            field: field.to_string(),
            value: text.trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_negative_and_fractional() {
        assert_eq!(id("u", " 42 "), Ok(42));
        assert!(matches!(id("u", "-3"), Err(Problem::NegativeId { .. })));
        assert!(matches!(id("u", "1.5"), Err(Problem::NotNumeric { .. })));
        assert!(matches!(id("u", ""), Err(Problem::NotNumeric { .. })));
    }

    #[test]
    fn floats_reject_nan_inf_and_f32_overflow() {
        assert_eq!(finite_f64("t", "1e3"), Ok(1000.0));
        for text in ["NaN", "-inf"] {
            let got = finite_f64("t", text);
            assert!(
                matches!(got, Err(Problem::NonFinite { .. })),
                "{text}: {got:?}"
            );
        }
        let got = finite_f32("f", "1e300");
        assert!(matches!(got, Err(Problem::NonFinite { .. })), "{got:?}");
        let got = finite_f64("t", "x");
        assert!(matches!(got, Err(Problem::NotNumeric { .. })), "{got:?}");
    }
}

//! Money formatting and rounding: exact decimals in, minor units (cents) out.

use rust_decimal::{Decimal, RoundingStrategy};

/// Number of minor-unit digits of an ISO 4217 currency (2 unless listed).
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}

/// Round an exact amount once, half away from zero, to the currency's minor unit (R5).
/// The result always carries exactly the minor digits (`0` → `0.00`).
pub fn round_to_minor(exact: Decimal, currency: &str) -> Decimal {
    let digits = minor_digits(currency);
    let mut rounded = exact.round_dp_with_strategy(digits, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(digits);
    rounded
}

/// A rounded amount as an integer number of minor units (e.g. cents).
pub fn to_minor_units(rounded: Decimal, currency: &str) -> i64 {
    let scaled = rounded * Decimal::from(10i64.pow(minor_digits(currency)));
    i64::try_from(scaled.trunc()).unwrap_or(i64::MAX)
}

/// Minor units back to a decimal amount with the currency's scale (`680` → `6.80`).
pub fn from_minor_units(minor: i64, currency: &str) -> Decimal {
    Decimal::new(minor, minor_digits(currency))
}

/// Minor units formatted as a plain decimal string (`680` → `"6.80"`), as the CSV and JSON use.
pub fn format_minor(minor: i64, currency: &str) -> String {
    from_minor_units(minor, currency).to_string()
}

/// An exact decimal with at least the currency's number of decimals (`3.5` → `"3.50"`, `1.7283` stays).
pub fn format_exact(exact: Decimal, currency: &str) -> String {
    let digits = minor_digits(currency);
    let mut value = exact.normalize();
    if value.scale() < digits {
        value.rescale(digits);
    }
    value.to_string()
}

/// Thousands separators for display (`1234567` → `"1,234,567"`).
pub fn group_thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A minor-unit amount for people: `"USD 1,234.50"`.
pub fn display_amount(minor: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    let unit = 10i64.pow(digits);
    let whole = group_thousands(minor / unit);
    let whole = if minor < 0 && minor / unit == 0 {
        format!("-{whole}")
    } else {
        whole
    };
    if digits == 0 {
        format!("{currency} {whole}")
    } else {
        let frac = (minor % unit).unsigned_abs();
        format!("{currency} {whole}.{frac:0width$}", width = digits as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn rounds_half_away_from_zero_once() {
        let d = |s| Decimal::from_str(s).unwrap();
        assert_eq!(round_to_minor(d("1.725"), "USD").to_string(), "1.73");
        assert_eq!(round_to_minor(d("0.005"), "USD").to_string(), "0.01");
        assert_eq!(round_to_minor(d("0.00014"), "USD").to_string(), "0.00");
        assert_eq!(round_to_minor(d("2.5"), "JPY").to_string(), "3");
    }

    #[test]
    fn formats_amounts_for_people_and_machines() {
        assert_eq!(format_minor(680, "USD"), "6.80");
        assert_eq!(format_minor(0, "USD"), "0.00");
        assert_eq!(display_amount(123456789, "USD"), "USD 1,234,567.89");
        assert_eq!(display_amount(5, "USD"), "USD 0.05");
        assert_eq!(group_thousands(52500), "52,500");
        assert_eq!(group_thousands(-1000), "-1,000");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(
            format_exact(Decimal::from_str("3.5").unwrap(), "USD"),
            "3.50"
        );
        assert_eq!(
            format_exact(Decimal::from_str("1.72830").unwrap(), "USD"),
            "1.7283"
        );
    }
}

//! `creditmeter import FILE.csv --org ID`: usage reported after the fact, from a CSV file (RFC 4180,
//! header `id,timestamp,credits` plus optional `operation,client,user`). Admitted by the ledger with
//! the same rules as `/api/v1/usage` (R12), the whole file in timestamp order; every bad row is
//! reported with its line number and reason, and the good rows are kept.

use crate::domain::types::OrgId;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

use crate::domain::event::{EventFields, RawCredits, UsageEvent};
use crate::ledger::{Kind, Outcome, UsageRequest};

/// One row that could not be read, by its line number in the file (the header is line 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: usize,
    pub reason: String,
}

/// A usage row read from the file, with its line number.
#[derive(Debug, Clone)]
pub struct Row {
    pub line: usize,
    pub request: UsageRequest,
}

/// Split CSV text (RFC 4180, read by the `csv` crate) into records of fields, with the line each
/// record starts on. Blank lines are skipped; records may have any number of fields (`parse` says
/// which do not match the header).
pub fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, BadRow> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let bytes = text.as_bytes();
    // The reader's position of a record can sit on the line break before it (after a blank line
    // or a CRLF): the record starts at the first byte from there that is not a line break.
    let (mut counted, mut line) = (0, 1);
    let mut line_of = |offset: usize| {
        let mut start = offset.min(bytes.len());
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        line += bytes[counted..start]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        counted = start;
        line
    };
    let mut out = Vec::new();
    let mut starts = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| BadRow {
            line: e.position().map_or(1, |p| p.line() as usize),
            reason: e.to_string(),
        })?;
        let offset = record.position().map_or(0, |p| p.byte() as usize);
        starts.push(offset.min(bytes.len()));
        out.push((line_of(offset), record.iter().map(str::to_string).collect()));
    }
    // The reader is lenient where RFC 4180 is not: a quote that is never closed takes the rest of
    // the file into one field, and a quote inside an unquoted field is kept as text. In a valid
    // record quotes come in pairs (around a field, and doubled inside it), so a record with an odd
    // number of them refuses the file, with its line.
    starts.push(bytes.len());
    for (i, window) in starts.windows(2).enumerate() {
        let quotes = bytes[window[0]..window[1]]
            .iter()
            .filter(|b| **b == b'"')
            .count();
        if quotes % 2 == 1 {
            return Err(BadRow {
                line: out[i].0,
                reason: "a quote is not closed, or a quote inside a field is not doubled (\"\")"
                    .into(),
            });
        }
    }
    Ok(out)
}

/// Read the file's rows for `org_id`: good rows and bad rows (a bad header fails the whole file).
pub fn parse(text: &str, org_id: OrgId) -> Result<(Vec<Row>, Vec<BadRow>), BadRow> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = records(text)?.into_iter();
    let (header_line, header) = records.next().ok_or(BadRow {
        line: 1,
        reason: "the file is empty".into(),
    })?;
    let columns: BTreeMap<String, usize> = header
        .iter()
        .enumerate()
        .map(|(i, name)| (name.trim().to_ascii_lowercase(), i))
        .collect();
    for required in ["id", "timestamp", "credits"] {
        if !columns.contains_key(required) {
            return Err(BadRow {
                line: header_line,
                reason: format!(
                    "the header must name the columns id,timestamp,credits (optional: operation,client,user); {required} is missing"
                ),
            });
        }
    }
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (line, fields) in records {
        let get = |name: &str| {
            columns
                .get(name)
                .and_then(|&i| fields.get(i))
                .map(|s| s.trim().to_string())
        };
        let row = (|| {
            if fields.len() != header.len() {
                return Err(format!(
                    "{} fields where the header has {}",
                    fields.len(),
                    header.len()
                ));
            }
            let cell = |name: &str| get(name);
            let (id, timestamp, credits) = (cell("id"), cell("timestamp"), cell("credits"));
            let (operation, client, user) = (cell("operation"), cell("client"), cell("user"));
            let event = UsageEvent::parse(
                EventFields {
                    id: id.as_deref(),
                    timestamp: timestamp.as_deref(),
                    credits: RawCredits::Text(credits.as_deref().unwrap_or_default()),
                    operation: operation.as_deref(),
                    client: client.as_deref(),
                    user: user.as_deref(),
                },
                Kind::Metered,
                DateTime::<Utc>::MIN_UTC,
            )
            .map_err(|e| e.to_string())?;
            Ok(UsageRequest::new(org_id, Kind::Metered, event))
        })();
        match row {
            Ok(request) => rows.push(Row { line, request }),
            Err(reason) => bad.push(BadRow { line, reason }),
        }
    }
    Ok((rows, bad))
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Summary {
    pub accepted: usize,
    pub duplicates: usize,
    pub refused: Vec<(usize, &'static str)>,
}

impl Summary {
    pub fn add(&mut self, line: usize, outcome: &Outcome) {
        match outcome {
            Outcome::Accepted { .. } => self.accepted += 1,
            Outcome::Duplicate { .. } => self.duplicates += 1,
            Outcome::Refused { reason, .. } => self.refused.push((line, reason.code())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rfc4180_records() {
        let text = "id,timestamp,credits,operation\r\na,2026-01-01T00:00:00Z,5,\"x, \"\"quoted\"\"\"\n\nb,2026-01-01T00:00:00Z,7,\"two\nlines\"\nc,2026-01-01T00:00:00Z,1,z";
        let recs = records(text).unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[1].1[3], "x, \"quoted\"");
        assert_eq!(recs[2].0, 4);
        assert_eq!(recs[2].1[3], "two\nlines");
        assert_eq!(recs[3].0, 6);
    }

    #[test]
    fn unbalanced_quotes_refuse_the_file_with_their_line() {
        let unclosed = "id,timestamp,credits\na,2026-01-01T00:00:00Z,1\n\"b,2026-01-01T00:00:00Z,1\nc,2026-01-01T00:00:00Z,1\n";
        assert_eq!(records(unclosed).unwrap_err().line, 3);
        let stray = "id,timestamp,credits\na,2026-01-01T00:00:00Z,1\nb\"x,2026-01-01T00:00:00Z,1\n";
        assert_eq!(records(stray).unwrap_err().line, 3);
        let fine = "id,timestamp,credits\n\"a \"\"q\"\"\",2026-01-01T00:00:00Z,1\n";
        assert_eq!(records(fine).unwrap()[1].1[0], "a \"q\"");
    }

    #[test]
    fn bad_rows_carry_their_line_and_reason() {
        let text = "id,timestamp,credits\n\
                    ok1,2026-01-01T10:00:00Z,5\n\
                    ,2026-01-01T10:00:00Z,5\n\
                    x,yesterday,5\n\
                    y,2026-01-01T10:00:00Z,-3\n\
                    z,2026-01-01T10:00:00Z,1.5\n\
                    w,2026-01-01T10:00:00Z\n\
                    ok2,2026-01-01T11:00:00+02:00,9\n\
                    bell\u{7},2026-01-01T10:00:00Z,5\n";
        let (rows, bad) = parse(text, OrgId::new(7)).unwrap();
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 8]);
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 9]);
        assert!(bad[5].reason.contains("control character"));
        assert!(bad[0].reason.contains("id is"));
        assert!(bad[1].reason.contains("RFC 3339"));
        assert!(bad[2].reason.contains("whole number"));
        assert!(bad[4].reason.contains("2 fields"));
        assert!(
            parse("a,b\n1,2\n", OrgId::new(1))
                .unwrap_err()
                .reason
                .contains("id,timestamp,credits")
        );
        assert!(parse("", OrgId::new(1)).is_err());
    }
}

#[cfg(test)]
mod same_as_the_api {
    use super::*;

    /// The CSV import and `/api/v1/usage` share `UsageEvent::parse`: a label with a control
    /// character is refused by both, with the same reason.
    #[test]
    fn labels_with_control_characters_are_refused_as_by_the_api() {
        let text = "id,timestamp,credits,operation,client\n\
                    a,2026-01-01T10:00:00Z,5,search,\"tab\there\"\n\
                    b,2026-01-01T10:00:00Z,5,,\n";
        let (rows, bad) = parse(text, OrgId::new(1)).unwrap();
        assert_eq!(bad.len(), 1);
        assert_eq!(
            (bad[0].line, bad[0].reason.as_str()),
            (2, "client contains a control character")
        );
        assert_eq!(rows[0].request.operation, crate::domain::event::UNSPECIFIED);
    }
}

#[cfg(test)]
mod generated {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_is_read_or_refused_without_a_panic(text in "\\PC{0,300}", header in any::<bool>()) {
            let text = if header { format!("id,timestamp,credits\n{text}") } else { text };
            if let Ok((rows, bad)) = parse(&text, OrgId::new(1)) {
                // Every record after the header is either a row or a bad row, never lost.
                let records = records(text.strip_prefix('\u{feff}').unwrap_or(&text)).unwrap();
                prop_assert_eq!(rows.len() + bad.len(), records.len() - 1);
                for row in rows {
                    prop_assert!(row.request.credits >= 1);
                }
            }
        }

        #[test]
        fn generated_rows_keep_their_line_numbers(cells in proptest::collection::vec(("[a-z0-9]{0,6}", "(2026-03-0[1-9]T10:00:00Z|noon|)", "-?[0-9]{0,4}"), 1..20)) {
            let mut text = String::from("id,timestamp,credits\n");
            for (id, stamp, credits) in &cells {
                text.push_str(&format!("{id},{stamp},{credits}\n"));
            }
            let (rows, bad) = parse(&text, OrgId::new(1)).unwrap();
            let mut lines: Vec<usize> = rows.iter().map(|r| r.line).chain(bad.iter().map(|b| b.line)).collect();
            lines.sort();
            prop_assert_eq!(lines, (2..cells.len() + 2).collect::<Vec<_>>());
        }
    }
}

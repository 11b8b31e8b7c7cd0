//! SNAP temporal edge lists: `src dst unix_ts` per line.

use std::io::{BufRead, Write};
use std::path::Path;

use super::fields;
use super::source::{self, Sink};
use crate::builder::{self, IdSpace, LoadReport, RawEvents, TimeOrder};
use crate::{DataError, EventStream, Problem, Result};

pub(crate) fn read(path: &Path, order: TimeOrder) -> Result<(EventStream, LoadReport)> {
    let mut reader = source::open(path)?;
    let mut raw = RawEvents::default();
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if reader
            .read_line(&mut line)
            .map_err(|e| DataError::io(path, e))?
            == 0
        {
            break;
        }
        number += 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with('%') {
            continue;
        }
        let at = |p: Problem| DataError::at(path, number, p);
        let mut it = t.split_ascii_whitespace();
        let mut next = |name: &str| {
            it.next().ok_or_else(|| {
                at(Problem::MissingField {
                    field: name.to_string(),
                })
            })
        };
        let (s, d, ts) = (next("src")?, next("dst")?, next("time")?);
        let extra = t.split_ascii_whitespace().count();
        if extra != 3 {
            return Err(at(Problem::FieldCount {
                expected: 3,
                found: extra,
            }));
        }
        raw.src.push(fields::id("src", s).map_err(at)?);
        raw.dst.push(fields::id("dst", d).map_err(at)?);
        raw.time.push(fields::finite_f64("time", ts).map_err(at)?);
    }
    builder::build(raw, IdSpace::Compact, order, path)
}

pub(crate) fn write(stream: &EventStream, path: &Path) -> Result<()> {
    Sink::write_lines(path, "", stream.len(), |w, i| {
        writeln!(w, "{} {} {}", stream.src[i], stream.dst[i], stream.time[i])
    })
}

//! One line of a served stream: CSV `src,dst,t[,features…]` or a JSON object.

use serde::Deserialize;

/// An event as a client sends it: the stream's original node ids and time unit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// Source node (original id; a user id in a two-sided stream).
    pub src: u64,
    /// Destination node (original id; an item id in a two-sided stream).
    pub dst: u64,
    /// Timestamp, in the unit of the training stream's file.
    pub t: f64,
    /// Edge features (none: zeros).
    #[serde(default)]
    pub features: Option<Vec<f32>>,
}

/// Longest part of a bad line quoted back in an error message.
const QUOTE: usize = 60;

/// Parses one line: `src,dst,t[,f1,…]` or `{"src": …, "dst": …, "t": …, "features": […]}`.
/// `Ok(None)` for a blank line.
///
/// # Errors
/// What is wrong with the line, quoting at most its first few dozen characters.
pub fn parse_line(line: &str) -> Result<Option<NewEvent>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let event = if line.starts_with('{') {
        serde_json::from_str(line).map_err(|e| format!("not a JSON event ({e})"))?
    } else {
        csv_event(line)?
    };
    if !event.t.is_finite() {
        return Err(format!("timestamp {} is not finite", event.t));
    }
    Ok(Some(event))
}

fn csv_event(line: &str) -> Result<NewEvent, String> {
    let mut fields = line.split(',').map(str::trim);
    let mut next = |name: &str| {
        fields
            .next()
            .ok_or_else(|| format!("expected `src,dst,t[,features…]`, `{name}` is missing"))
    };
    let id = |name: &str, s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("`{name}` is not a node id: `{}`", quote(s)))
    };
    let src = id("src", next("src")?)?;
    let dst = id("dst", next("dst")?)?;
    let t = next("t")?;
    let t = t
        .parse::<f64>()
        .map_err(|_| format!("`t` is not a number: `{}`", quote(t)))?;
    let features = fields
        .enumerate()
        .map(|(j, f)| {
            f.parse::<f32>()
                .map_err(|_| format!("feature {} is not a number: `{}`", j + 1, quote(f)))
        })
        .collect::<Result<Vec<f32>, String>>()?;
    Ok(NewEvent {
        src,
        dst,
        t,
        features: (!features.is_empty()).then_some(features),
    })
}

/// The first [`QUOTE`] characters of `s`, marked when cut.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_lines_parse_to_the_same_event() {
        let want = NewEvent {
            src: 3,
            dst: 17,
            t: 1.5e9,
            features: Some(vec![0.5, -1.0]),
        };
        assert_eq!(
            parse_line("3, 17,1.5e9,0.5,-1").unwrap(),
            Some(want.clone())
        );
        let json = r#"{"src": 3, "dst": 17, "t": 1500000000, "features": [0.5, -1]}"#;
        assert_eq!(parse_line(json).unwrap(), Some(want));
        let bare = parse_line("3,17,2").unwrap().unwrap();
        assert_eq!(bare.features, None);
        assert_eq!(parse_line("   ").unwrap(), None);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let err = |l: &str| parse_line(l).unwrap_err();
        assert!(err("3,17").contains("`t` is missing"), "{}", err("3,17"));
        assert!(err("a,17,2").contains("`src` is not a node id"));
        assert!(err("3,17,x").contains("`t` is not a number"));
        assert!(err("3,17,2,0.5,y").contains("feature 2"));
        assert!(err("3,17,inf").contains("not finite"));
        assert!(err(r#"{"src": 3}"#).contains("not a JSON event"));
        // A huge line is quoted back cut short.
        let huge = format!("3,17,{}", "9".repeat(10_000_000) + "x");
        assert!(err(&huge).len() < 200);
    }
}

//! Bad input: a typed error naming the file, the 1-based line and the problem, never a panic.

use std::path::{Path, PathBuf};

use mspipe_data::{DataError, Format, Problem, ReadOptions, TimeOrder, format, npy};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn read(path: &Path) -> DataError {
    format::read(path, &ReadOptions::default()).expect_err("must fail")
}

fn assert_at(e: &DataError, file: &str, line: u64) {
    assert_eq!(e.line(), Some(line), "{e}");
    let text = e.to_string();
    assert!(text.contains(&format!("{file}:{line}: ")), "{text}");
}

#[test]
fn snap_rows_with_bad_fields_name_their_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("1 2 3\n# comment\n4 x 5\n", 3, "NotNumeric"),
        ("1 2 3\n-4 2 5\n", 2, "NegativeId"),
        ("1 2 3\n4 2 NaN\n", 2, "NonFinite"),
        ("1 2 3\n4 2 inf\n", 2, "NonFinite"),
        ("1 2 3\n4 2\n", 2, "MissingField"),
        ("1 2 3\n4 2 5 6\n", 2, "FieldCount"),
    ];
    for (text, line, kind) in cases {
        let p = write(dir.path(), "e.txt", text);
        let e = format::read(
            &p,
            &ReadOptions {
                format: Some(Format::Snap),
                ..Default::default()
            },
        )
        .expect_err(text);
        assert_at(&e, "e.txt", line);
        assert!(format!("{:?}", e.problem()).contains(kind), "{text}: {e}");
    }
}

#[test]
fn csv_problems_name_their_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "e.csv", "src,dst,t\n1,2,3\n1,2,three\n");
    assert_at(&read(&p), "e.csv", 3);
    let p = write(dir.path(), "e.csv", "src,dst,t\n1,2,3\n1,-2,4\n");
    let e = read(&p);
    assert_at(&e, "e.csv", 3);
    assert!(matches!(e.problem(), Some(Problem::NegativeId { .. })));
    let p = write(dir.path(), "e.csv", "src,dst,t\n1,2,3\n1\n");
    assert!(matches!(
        read(&p).problem(),
        Some(Problem::MissingField { .. })
    ));
    let p = write(dir.path(), "e.csv", "a,b,c\n1,2,3\n");
    let e = format::read(
        &p,
        &ReadOptions {
            format: Some(Format::Csv),
            ..Default::default()
        },
    )
    .expect_err("no known columns");
    assert!(e.to_string().contains("no source column"), "{e}");
}

#[test]
fn csv_columns_can_be_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "e.csv", "a,b,when\n5,6,1\n6,7,2\n");
    let options = ReadOptions {
        format: Some(Format::Csv),
        columns: mspipe_data::ColumnNames {
            src: Some("a".into()),
            dst: Some("b".into()),
            time: Some("when".into()),
            label: None,
        },
        ..Default::default()
    };
    let (s, _) = format::read(&p, &options).expect("named columns");
    assert_eq!(s.node_ids().originals(), &[5, 6, 7]);
}

#[test]
fn empty_and_undetectable_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "e.txt", "# only a comment\n\n");
    assert_eq!(read(&p).problem(), Some(&Problem::Empty));
    let p = write(dir.path(), "h.csv", "src,dst,t\n");
    assert_eq!(read(&p).problem(), Some(&Problem::Empty));
    let p = write(dir.path(), "w.txt", "hello world\n");
    let e = read(&p);
    assert_at(&e, "w.txt", 1);
    assert!(e.to_string().contains("cannot tell the format"));
    let e = read(&dir.path().join("missing.csv"));
    assert!(matches!(e, DataError::Io { .. }));
}

#[test]
fn unsorted_files_are_sorted_or_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "e.txt", "1 2 30\n2 3 10\n3 4 20\n4 5 5\n");
    let (s, report) = format::read(&p, &ReadOptions::default()).expect("sorted");
    assert_eq!(report.inversions, 2);
    assert_eq!(s.time(), &[5.0, 10.0, 20.0, 30.0]);
    let strict = ReadOptions {
        time_order: TimeOrder::Error,
        ..Default::default()
    };
    let e = format::read(&p, &strict).expect_err("strict");
    assert_eq!(e.problem(), Some(&Problem::Unsorted { inversions: 2 }));
}

#[test]
fn dyglib_feature_files_must_fit_the_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = write(
        dir.path(),
        "ml_x.csv",
        ",u,i,ts,label,idx\n0,1,2,0.0,0,1\n1,2,3,1.0,0,2\n",
    );
    // Too few rows: 2 events need 3 rows (row 0 is padding).
    let f = mspipe_data::Features::new(vec![0.0; 4], 2).expect("features");
    npy::write_matrix(&dir.path().join("ml_x.npy"), &f).expect("npy");
    let e = read(&csv);
    assert!(e.to_string().contains("ml_x.npy"), "{e}");
    assert_eq!(
        e.problem(),
        Some(&Problem::FeatureRows {
            expected: 3,
            found: 2
        })
    );
    // A non-finite feature names its row and column.
    let f = mspipe_data::Features::new(vec![0.0, 0.0, 1.0, f32::NAN, 2.0, 3.0], 2).expect("f");
    npy::write_matrix(&dir.path().join("ml_x.npy"), &f).expect("npy");
    let e = read(&csv);
    assert!(e.to_string().contains("row 1 column 1"), "{e}");
    // An idx that points past the feature rows names its line.
    let f = mspipe_data::Features::new(vec![0.0; 6], 2).expect("f");
    npy::write_matrix(&dir.path().join("ml_x.npy"), &f).expect("npy");
    write(
        dir.path(),
        "ml_x.csv",
        ",u,i,ts,label,idx\n0,1,2,0.0,0,1\n1,2,3,1.0,0,7\n",
    );
    assert_at(&read(&csv), "ml_x.csv", 3);
}

#[test]
fn tgl_ext_roll_outside_range_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "edges.csv",
        ",src,dst,time,int_roll,ext_roll\n0,1,2,0,0,0\n1,2,3,1,0,5\n",
    );
    let e = read(&p);
    assert_at(&e, "edges.csv", 3);
    assert!(matches!(e.problem(), Some(Problem::Split { .. })));
}

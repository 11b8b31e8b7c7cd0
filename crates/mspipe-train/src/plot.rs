//! SVG charts of a run's history: loss per epoch, and validation/test AP per epoch.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::record::EpochRecord;

/// Writes `loss.svg` and `ap.svg` into `out` from the per-epoch `history`.
pub fn write(out: &Path, history: &[EpochRecord]) -> Result<()> {
    let series = |value: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|h| Some((h.epoch as f64, value(h).filter(|v| v.is_finite())?)))
            .collect()
    };
    chart(
        &out.join("loss.svg"),
        "training loss",
        &[("loss", series(&|h| Some(h.training.as_ref()?.loss)))],
    )?;
    chart(
        &out.join("ap.svg"),
        "average precision",
        &[
            ("val AP", series(&|h| Some(h.val.ap))),
            ("test AP", series(&|h| Some(h.test.ap))),
        ],
    )
}

fn chart(path: &Path, title: &str, lines: &[(&str, Vec<(f64, f64)>)]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("{}: {e}", path.display());
    let points = lines.iter().flat_map(|(_, l)| l.iter());
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.1).max(1e-3);
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(1.0..x_max.max(2.0), (y_min - pad)..(y_max + pad))
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .x_desc("epoch")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (name, line)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        c.draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_hold_one_point_per_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let history: Vec<EpochRecord> = (1..=3)
            .map(|e| {
                serde_json::from_value(serde_json::json!({
                    "epoch": e, "loss": 1.0 / e as f64, "train_seconds": 1.0,
                    "train_events_per_sec": 1.0, "seconds": 1.0,
                    "pipeline": {"mean_staleness": 0.0, "max_staleness": 0, "stage_seconds": {}},
                    "val_ap": 0.8 + 0.01 * e as f64, "test_ap": 0.7 + 0.02 * e as f64,
                    "val_auc": 0.5, "val_ap_pooled": 0.5, "val_auc_pooled": 0.5,
                    "val_ap_new_node_events": null, "val_auc_new_node_events": null,
                    "test_auc": 0.5, "test_ap_pooled": 0.5, "test_auc_pooled": 0.5,
                    "test_ap_new_node_events": null, "test_auc_new_node_events": null,
                }))
                .expect("a record")
            })
            .collect();
        write(dir.path(), &history).unwrap();
        let ap = std::fs::read_to_string(dir.path().join("ap.svg")).unwrap();
        assert!(ap.starts_with("<svg"));
        assert!(ap.contains("val AP") && ap.contains("test AP"));
        let loss = std::fs::read_to_string(dir.path().join("loss.svg")).unwrap();
        let polyline = loss
            .lines()
            .find(|l| l.contains("<polyline") && l.contains("stroke-width=\"2\""))
            .expect("the loss series");
        let points = polyline
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split_whitespace().count(), 3, "{polyline}");
    }
}

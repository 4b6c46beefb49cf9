//! Plots of a reference mapping (docs/algorithms.md §10.1), PNG + SVG in the
//! style of [`crate::embedding_plot`]:
//!
//! - [`mapping_plot`]: the query's cells over the reference's UMAP (drawn
//!   light grey underneath), coloured by a category (transferred label,
//!   query dataset) or by a value in [0, 1] (vote confidence) on a
//!   viridis-like scale with a colour bar; cells flagged unmatched are drawn
//!   as black crosses on top and counted in the legend.
//! - [`confusion_plot`]: the query's own labels (rows) against the
//!   transferred ones (columns), each row normalized to shares
//!   `f_ij = n_ij / Σ_j n_ij`, shaded white (0) → blue (1) with the share in
//!   percent written in the cell, and free text (accuracy, recall) beside it.
//!
//! Reference and query are each drawn as a seeded random subset of at most
//! [`MAX_PNG_POINTS`] / [`MAX_SVG_POINTS`] cells, the query in random order,
//! so the files depend only on the data and the seed.

use std::path::{Path, PathBuf};

use ndarray::ArrayView2;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{AnalysisError, Result};
use crate::partition::MISSING;
use crate::plots::{
    color, legend, point_radius, s, umap_chart, write_both, Drawn, FONT, MAX_PNG_POINTS, MAX_SVG_POINTS, SIZE,
};
use crate::rng::sample_indices;

/// The grey of the reference's cells.
const BACKGROUND: RGBColor = RGBColor(215, 215, 215);
/// Anchors of the continuous scale (viridis at 0, ¼, ½, ¾, 1).
const SCALE: [(f64, f64, f64); 5] = [
    (68.0, 1.0, 84.0),
    (59.0, 82.0, 139.0),
    (33.0, 145.0, 140.0),
    (94.0, 201.0, 98.0),
    (253.0, 231.0, 37.0),
];

/// The colour of `v` ∈ [0, 1] on the scale (clamped; linear between anchors).
pub fn scale_color(v: f64) -> RGBColor {
    let v = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 };
    let x = v * (SCALE.len() - 1) as f64;
    let i = (x.floor() as usize).min(SCALE.len() - 2);
    let t = x - i as f64;
    let (a, b) = (SCALE[i], SCALE[i + 1]);
    let mix = |p: f64, q: f64| (p + t * (q - p)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// How the query's cells of a [`mapping_plot`] are coloured.
#[derive(Clone, Copy, Debug)]
pub enum QueryColors<'a> {
    /// One colour per category: `codes[c]` indexes `names`
    /// ([`MISSING`] drawn grey), legend with each category's cell count.
    Groups {
        /// One code per query cell.
        codes: &'a [u32],
        /// Category names.
        names: &'a [String],
    },
    /// A value in [0, 1] per query cell on the continuous scale, with a
    /// colour bar titled by the legend title.
    Scale {
        /// One value per query cell.
        values: &'a [f64],
    },
}

/// What a [`mapping_plot`] draws.
#[derive(Clone, Copy, Debug)]
pub struct MappingPlot<'a> {
    /// The reference's UMAP, cells × 2 (grey background).
    pub reference: ArrayView2<'a, f32>,
    /// The query's placement on it, cells × 2.
    pub query: ArrayView2<'a, f32>,
    /// The query's colours.
    pub colors: QueryColors<'a>,
    /// Query cells drawn as black crosses on top (e.g. flagged unmatched).
    pub marked: Option<&'a [bool]>,
    /// Legend entry of the marked cells (their count is appended).
    pub marked_name: &'a str,
    /// Plot title.
    pub title: &'a str,
    /// Legend (or colour bar) title.
    pub legend_title: &'a str,
    /// Seed of the subsets and drawing order.
    pub seed: u64,
}

struct Prepared<'a, 'b> {
    p: &'b MappingPlot<'a>,
    ref_order: Vec<usize>,
    query_order: Vec<usize>,
    counts: Vec<usize>,
    n_marked: usize,
    bounds: (f32, f32, f32, f32),
}

fn bounds<'a>(views: impl Iterator<Item = ArrayView2<'a, f32>>) -> (f32, f32, f32, f32) {
    let (mut x0, mut x1, mut y0, mut y1) =
        (f32::INFINITY, f32::NEG_INFINITY, f32::INFINITY, f32::NEG_INFINITY);
    for v in views {
        for r in v.outer_iter() {
            x0 = x0.min(r[0]);
            x1 = x1.max(r[0]);
            y0 = y0.min(r[1]);
            y1 = y1.max(r[1]);
        }
    }
    if x0 > x1 || y0 > y1 {
        return (0.0, 1.0, 0.0, 1.0);
    }
    let (px, py) = (0.03 * (x1 - x0).max(1e-6), 0.03 * (y1 - y0).max(1e-6));
    (x0 - px, x1 + px, y0 - py, y1 + py)
}

fn color_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, header: &str, top: i32) -> Drawn {
    area.draw(&Text::new(header.to_string(), (10, top), (FONT, 15)))
        .map_err(s)?;
    let (y0, h) = (top + 26, 300);
    for i in 0..h {
        let v = 1.0 - i as f64 / (h - 1) as f64;
        area.draw(&Rectangle::new(
            [(10, y0 + i), (34, y0 + i + 1)],
            scale_color(v).filled(),
        ))
        .map_err(s)?;
    }
    area.draw(&Rectangle::new([(10, y0), (34, y0 + h)], BLACK.stroke_width(1)))
        .map_err(s)?;
    for k in 0..=4 {
        let v = k as f64 / 4.0;
        let y = y0 + ((1.0 - v) * (h - 1) as f64).round() as i32;
        area.draw(&PathElement::new(vec![(34, y), (40, y)], BLACK))
            .map_err(s)?;
        area.draw(&Text::new(
            format!("{v:.2}"),
            (44, y),
            TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(s)?;
    }
    Ok(())
}

fn draw_mapping<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    q: &Prepared<'_, '_>,
    max_points: usize,
) -> Drawn {
    let p = q.p;
    root.fill(&WHITE).map_err(s)?;
    let (main, side) = root.split_horizontally(SIZE.0 - 260);
    let mut chart = umap_chart(&main, p.title, 18, q.bounds)?;
    let rt = max_points.min(q.ref_order.len());
    let r = point_radius(rt).min(2);
    chart
        .draw_series(
            q.ref_order[..rt]
                .iter()
                .map(|&i| Circle::new((p.reference[[i, 0]], p.reference[[i, 1]]), r, BACKGROUND.filled())),
        )
        .map_err(s)?;
    let qt = max_points.min(q.query_order.len());
    let r = point_radius(qt);
    let marked = |i: usize| p.marked.is_some_and(|m| m[i]);
    chart
        .draw_series(q.query_order[..qt].iter().filter(|&&i| !marked(i)).map(|&i| {
            let c = match p.colors {
                QueryColors::Groups { codes, names } => {
                    let g = codes[i] as usize;
                    if g < names.len() {
                        color(g)
                    } else {
                        RGBColor(150, 150, 150)
                    }
                }
                QueryColors::Scale { values } => scale_color(values[i]),
            };
            Circle::new((p.query[[i, 0]], p.query[[i, 1]]), r, c.mix(0.85).filled())
        }))
        .map_err(s)?;
    chart
        .draw_series(
            q.query_order[..qt]
                .iter()
                .filter(|&&i| marked(i))
                .map(|&i| Cross::new((p.query[[i, 0]], p.query[[i, 1]]), r + 2, BLACK.stroke_width(2))),
        )
        .map_err(s)?;
    let below = match p.colors {
        QueryColors::Groups { names, .. } => {
            legend(&side, p.legend_title, names, &q.counts)?;
            38 + 22 * names.len().min(32) as i32 + if names.len() > 32 { 22 } else { 0 }
        }
        QueryColors::Scale { .. } => {
            color_bar(&side, p.legend_title, 12)?;
            360
        }
    };
    let mut y = below + 10;
    if p.marked.is_some() {
        side.draw(&Cross::new((18, y + 8), 6, BLACK.stroke_width(2)))
            .map_err(s)?;
        side.draw(&Text::new(
            format!("{} ({})", p.marked_name, q.n_marked),
            (34, y + 1),
            (FONT, 14),
        ))
        .map_err(s)?;
        y += 24;
    }
    side.draw(&Circle::new((18, y + 8), 5, BACKGROUND.filled()))
        .map_err(s)?;
    side.draw(&Text::new(
        format!("reference ({})", p.reference.nrows()),
        (34, y + 1),
        (FONT, 14),
    ))
    .map_err(s)?;
    Ok(())
}

/// The query over the greyed reference UMAP (module doc); writes
/// `STEM.png` and `STEM.svg`.
pub fn mapping_plot(stem: &Path, p: &MappingPlot<'_>) -> Result<Vec<PathBuf>> {
    let nq = p.query.nrows();
    let bad = |what: String| Err(AnalysisError::InvalidData(format!("mapping plot: {what}")));
    if p.reference.ncols() != 2 || p.query.ncols() != 2 {
        return bad(format!(
            "embeddings have {} and {} columns, not 2",
            p.reference.ncols(),
            p.query.ncols()
        ));
    }
    let n_colors = match p.colors {
        QueryColors::Groups { codes, .. } => codes.len(),
        QueryColors::Scale { values } => values.len(),
    };
    if n_colors != nq || p.marked.is_some_and(|m| m.len() != nq) {
        return bad(format!("{nq} query cells but {n_colors} colour values"));
    }
    let mut counts = Vec::new();
    if let QueryColors::Groups { codes, names } = p.colors {
        counts = vec![0usize; names.len()];
        for &g in codes {
            if let Some(c) = counts.get_mut(g as usize) {
                *c += 1;
            }
        }
        debug_assert!(codes.iter().all(|&g| (g as usize) < names.len() || g == MISSING));
    }
    let prepared = Prepared {
        p,
        ref_order: sample_indices(p.seed, &[0x9108], p.reference.nrows(), MAX_PNG_POINTS),
        query_order: sample_indices(p.seed, &[0x9109], nq, MAX_PNG_POINTS),
        counts,
        n_marked: p.marked.map_or(0, |m| m.iter().filter(|&&x| x).count()),
        bounds: bounds([p.reference, p.query].into_iter()),
    };
    write_both(
        stem,
        |r| draw_mapping(r, &prepared, MAX_PNG_POINTS),
        |r| draw_mapping(r, &prepared, MAX_SVG_POINTS),
    )
}

/// What a [`confusion_plot`] draws.
#[derive(Clone, Copy, Debug)]
pub struct ConfusionPlot<'a> {
    /// Row names (the query's own labels).
    pub rows: &'a [String],
    /// Column names (transferred labels).
    pub columns: &'a [String],
    /// Counts, `rows.len()` rows of `columns.len()` values.
    pub counts: &'a [Vec<u64>],
    /// Plot title.
    pub title: &'a str,
    /// Name of the rows' axis.
    pub row_title: &'a str,
    /// Name of the columns' axis.
    pub column_title: &'a str,
    /// Lines of text beside the table (e.g. per-type recall).
    pub notes: &'a [String],
}

fn short(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_string()
    } else {
        let mut t: String = name.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

fn draw_confusion<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &ConfusionPlot<'_>) -> Drawn {
    root.fill(&WHITE).map_err(s)?;
    let (main, side) = root.split_horizontally(SIZE.0 - 300);
    main.draw(&Text::new(p.title.to_string(), (12, 10), (FONT, 17)))
        .map_err(s)?;
    let (nr, nc) = (p.rows.len(), p.columns.len());
    let (left, top) = (170i32, 190i32);
    let (w, h) = main.dim_in_pixel();
    let cell = (((w as i32 - left - 20) / nc.max(1) as i32).min((h as i32 - top - 20) / nr.max(1) as i32))
        .clamp(4, 60);
    let center = |hp, vp| TextStyle::from((FONT, 14).into_font()).pos(Pos::new(hp, vp));
    for (i, row) in p.counts.iter().enumerate() {
        let total: u64 = row.iter().sum();
        let y = top + i as i32 * cell;
        for (j, &n) in row.iter().enumerate() {
            let f = if total > 0 { n as f64 / total as f64 } else { 0.0 };
            let x = left + j as i32 * cell;
            let c = RGBColor(
                (255.0 - f * (255.0 - 31.0)).round() as u8,
                (255.0 - f * (255.0 - 90.0)).round() as u8,
                (255.0 - f * (255.0 - 170.0)).round() as u8,
            );
            main.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], c.filled()))
                .map_err(s)?;
            main.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                RGBColor(230, 230, 230),
            ))
            .map_err(s)?;
            if cell >= 22 && n > 0 {
                let text = format!("{:.0}", 100.0 * f);
                let style = center(HPos::Center, VPos::Center).color(if f > 0.5 { &WHITE } else { &BLACK });
                main.draw(&Text::new(text, (x + cell / 2, y + cell / 2), style))
                    .map_err(s)?;
            }
        }
        main.draw(&Text::new(
            format!("{} ({total})", short(&p.rows[i], 16)),
            (left - 6, y + cell / 2),
            center(HPos::Right, VPos::Center),
        ))
        .map_err(s)?;
    }
    for (j, name) in p.columns.iter().enumerate() {
        let x = left + j as i32 * cell + cell / 2;
        let style = TextStyle::from((FONT, 14).into_font())
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Left, VPos::Center));
        main.draw(&Text::new(short(name, 18), (x, top - 6), style))
            .map_err(s)?;
    }
    main.draw(&Text::new(
        format!("{} →", p.column_title),
        (left, 40),
        (FONT, 14),
    ))
    .map_err(s)?;
    main.draw(&Text::new(
        format!("{} ↓ (cells)", p.row_title),
        (10, top - 24),
        (FONT, 14),
    ))
    .map_err(s)?;
    let mut y = 40;
    side.draw(&Text::new("% of each row".to_string(), (10, y), (FONT, 14)))
        .map_err(s)?;
    y += 26;
    for line in p.notes.iter().take(34) {
        side.draw(&Text::new(line.clone(), (10, y), (FONT, 13)))
            .map_err(s)?;
        y += 20;
    }
    Ok(())
}

/// The row-normalized confusion table (module doc); writes `STEM.png` and
/// `STEM.svg`.
pub fn confusion_plot(stem: &Path, p: &ConfusionPlot<'_>) -> Result<Vec<PathBuf>> {
    if p.counts.len() != p.rows.len() || p.counts.iter().any(|r| r.len() != p.columns.len()) {
        return Err(AnalysisError::InvalidData(format!(
            "confusion plot: {} row names, {} column names, counts of another shape",
            p.rows.len(),
            p.columns.len()
        )));
    }
    write_both(stem, |r| draw_confusion(r, p), |r| draw_confusion(r, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn scale_hits_its_anchors_and_clamps() {
        assert_eq!(scale_color(0.0), RGBColor(68, 1, 84));
        assert_eq!(scale_color(1.0), RGBColor(253, 231, 37));
        assert_eq!(scale_color(0.5), RGBColor(33, 145, 140));
        assert_eq!(scale_color(-3.0), scale_color(0.0));
        assert_eq!(scale_color(f64::NAN), scale_color(0.0));
        assert_eq!(scale_color(0.125), RGBColor(64, 42, 112));
    }

    #[test]
    fn writes_mapping_and_confusion_plots() {
        let dir = std::env::temp_dir().join(format!("inmf-mapping-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = Array2::from_shape_fn((400, 2), |(i, j)| ((i * (j + 3)) % 17) as f32);
        let q = Array2::from_shape_fn((90, 2), |(i, j)| ((i * (j + 5)) % 13) as f32 + 0.5);
        let codes: Vec<u32> = (0..90)
            .map(|i| if i == 7 { MISSING } else { (i % 3) as u32 })
            .collect();
        let names: Vec<String> = ["T", "B", "NK"].iter().map(|s| s.to_string()).collect();
        let marked: Vec<bool> = (0..90).map(|i| i % 10 == 0).collect();
        let plot = MappingPlot {
            reference: r.view(),
            query: q.view(),
            colors: QueryColors::Groups {
                codes: &codes,
                names: &names,
            },
            marked: Some(&marked),
            marked_name: "unmatched",
            title: "query on the reference",
            legend_title: "cell_type",
            seed: 1,
        };
        mapping_plot(&dir.join("m"), &plot).unwrap();
        let svg = std::fs::read_to_string(dir.join("m.svg")).unwrap();
        assert!(
            svg.contains("unmatched (9)")
                && svg.contains("T (30)")
                && svg.contains("B (29)")
                && svg.contains("reference (400)")
        );
        assert_eq!(&std::fs::read(dir.join("m.png")).unwrap()[1..4], b"PNG");
        let conf: Vec<f64> = (0..90).map(|i| i as f64 / 89.0).collect();
        let plot = MappingPlot {
            colors: QueryColors::Scale { values: &conf },
            marked: None,
            ..plot
        };
        mapping_plot(&dir.join("c"), &plot).unwrap();
        assert!(std::fs::read_to_string(dir.join("c.svg"))
            .unwrap()
            .contains("0.75"));
        let bad = MappingPlot {
            colors: QueryColors::Scale { values: &conf[..5] },
            ..plot
        };
        assert!(mapping_plot(&dir.join("bad"), &bad).is_err());
        let cols: Vec<String> = ["T", "B", "unmatched"].iter().map(|s| s.to_string()).collect();
        let counts = vec![vec![8, 2, 0], vec![1, 9, 0], vec![0, 0, 0]];
        let notes = vec!["T recall 0.80".to_string()];
        let cp = ConfusionPlot {
            rows: &names,
            columns: &cols,
            counts: &counts,
            title: "accuracy 0.85",
            row_title: "query cell_type",
            column_title: "transferred",
            notes: &notes,
        };
        confusion_plot(&dir.join("t"), &cp).unwrap();
        let svg = std::fs::read_to_string(dir.join("t.svg")).unwrap();
        assert!(
            svg.contains("\n80\n") && svg.contains("\n90\n") && svg.contains("T recall 0.80"),
            "{svg}"
        );
        assert!(confusion_plot(
            &dir.join("t2"),
            &ConfusionPlot {
                counts: &counts[..2],
                ..cp
            }
        )
        .is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

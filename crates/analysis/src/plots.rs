//! Plots for a person to judge an integration at a glance, each written as
//! PNG and SVG: the 2-D embedding colored by a grouping (dataset, cluster,
//! label), the objective per epoch, and the dataset composition of each
//! cluster.
//!
//! Text is drawn with DejaVu Sans embedded in the binary (the `dejavu`
//! crate through plotters' pure-Rust `ab_glyph` backend): no system font
//! library or font file is needed. Scatter plots draw at most
//! [`MAX_PNG_POINTS`] / [`MAX_SVG_POINTS`] cells, a seeded random subset
//! drawn in random order so that no group hides another by being drawn last.

use std::path::{Path, PathBuf};
use std::sync::Once;

use ndarray::ArrayView2;
use plotters::coord::types::RangedCoordf32;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{AnalysisError, Result};
use crate::rng::sample_indices;

/// Most cells drawn in a PNG scatter plot.
pub const MAX_PNG_POINTS: usize = 200_000;
/// Most cells drawn in an SVG scatter plot (each is an element).
pub const MAX_SVG_POINTS: usize = 30_000;

pub(crate) const SIZE: (u32, u32) = (1100, 800);
pub(crate) const FONT: &str = "sans-serif";

pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Cannot fail: the bytes are a valid TrueType font.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Tableau-like categorical palette; more groups cycle through golden-angle hues.
const PALETTE: [(u8, u8, u8); 20] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
];

/// The color of group `g`.
pub fn color(g: usize) -> RGBColor {
    if g < PALETTE.len() {
        let (r, gg, b) = PALETTE[g];
        RGBColor(r, gg, b)
    } else {
        let h = (g as f64 * 0.618_033_988_75).fract();
        let c = HSLColor(h, 0.65, 0.5).to_rgba();
        RGBColor(c.0, c.1, c.2)
    }
}

fn plot_err(path: &Path) -> impl Fn(String) -> AnalysisError + '_ {
    move |reason| AnalysisError::Plot {
        path: path.to_path_buf(),
        reason,
    }
}

pub(crate) type Drawn = std::result::Result<(), String>;

/// An axis tick: plain up to 10⁷ (one decimal from 100 up), scientific beyond.
pub(crate) fn tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e7).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

pub(crate) fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Writes `STEM.png` with `png_draw` and `STEM.svg` with `svg_draw`.
pub(crate) fn write_both<P, S>(stem: &Path, png_draw: P, svg_draw: S) -> Result<Vec<PathBuf>>
where
    P: FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Drawn,
    S: FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Drawn,
{
    register_font();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        png_draw(&root).map_err(plot_err(&png))?;
        root.present().map_err(|e| plot_err(&png)(e.to_string()))?;
    }
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        svg_draw(&root).map_err(plot_err(&svg))?;
        root.present().map_err(|e| plot_err(&svg)(e.to_string()))?;
    }
    Ok(vec![png, svg])
}

/// Draws a legend of colored squares with names (at most 32 entries).
pub(crate) fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    header: &str,
    names: &[String],
    counts: &[usize],
) -> Drawn {
    area.draw(&Text::new(header.to_string(), (10, 12), (FONT, 15)))
        .map_err(s)?;
    let shown = names.len().min(32);
    for (g, name) in names.iter().enumerate().take(shown) {
        let y = 38 + 22 * g as i32;
        area.draw(&Rectangle::new([(10, y), (26, y + 16)], color(g).filled()))
            .map_err(s)?;
        let label = match counts.get(g) {
            Some(c) => format!("{name} ({c})"),
            None => name.clone(),
        };
        area.draw(&Text::new(label, (34, y + 1), (FONT, 14))).map_err(s)?;
    }
    if names.len() > shown {
        let y = 38 + 22 * shown as i32;
        area.draw(&Text::new(
            format!("… {} more", names.len() - shown),
            (10, y),
            (FONT, 14),
        ))
        .map_err(s)?;
    }
    Ok(())
}

struct Scatter<'a> {
    embedding: ArrayView2<'a, f32>,
    groups: &'a [u32],
    names: &'a [String],
    counts: Vec<usize>,
    order: Vec<usize>,
    title: &'a str,
    legend_title: &'a str,
    bounds: (f32, f32, f32, f32),
}

/// The axes of a UMAP scatter over `area`: `title` at `title_size`,
/// "UMAP 1" and "UMAP 2" over `bounds` (x0, x1, y0, y1), no grid.
pub(crate) fn umap_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
    title_size: u32,
    bounds: (f32, f32, f32, f32),
) -> std::result::Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf32, RangedCoordf32>>, String> {
    let (x0, x1, y0, y1) = bounds;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, title_size))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(s)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("UMAP 1")
        .y_desc("UMAP 2")
        .label_style((FONT, 13))
        .draw()
        .map_err(s)?;
    Ok(chart)
}

/// Marker radius for `n` points drawn: 1 above 50,000, 2 above 5,000,
/// else 3.
pub(crate) fn point_radius(n: usize) -> i32 {
    if n > 50_000 {
        1
    } else if n > 5_000 {
        2
    } else {
        3
    }
}

fn draw_scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &Scatter<'_>,
    max_points: usize,
) -> Drawn {
    root.fill(&WHITE).map_err(s)?;
    let (main, side) = root.split_horizontally(SIZE.0 - 260);
    let mut chart = umap_chart(&main, p.title, 20, p.bounds)?;
    let take = max_points.min(p.order.len());
    let radius = point_radius(take);
    chart
        .draw_series(p.order[..take].iter().map(|&i| {
            let g = p.groups[i] as usize;
            let c = if g < p.names.len() {
                color(g)
            } else {
                RGBColor(190, 190, 190)
            };
            Circle::new(
                (p.embedding[[i, 0]], p.embedding[[i, 1]]),
                radius,
                c.mix(0.75).filled(),
            )
        }))
        .map_err(s)?;
    legend(&side, p.legend_title, p.names, &p.counts)
}

/// Scatter plot of a 2-D embedding colored by `groups` (codes into
/// `names`; other codes, e.g. [`crate::MISSING`], drawn grey), with a
/// legend giving each group's cell count; writes `STEM.png` and `STEM.svg`.
pub fn embedding_plot(
    stem: &Path,
    embedding: ArrayView2<'_, f32>,
    groups: &[u32],
    names: &[String],
    title: &str,
    legend_title: &str,
    seed: u64,
) -> Result<Vec<PathBuf>> {
    let n = embedding.nrows();
    if groups.len() != n || embedding.ncols() != 2 {
        return Err(AnalysisError::InvalidData(format!(
            "embedding plot: {} × {} embedding, {} group codes",
            n,
            embedding.ncols(),
            groups.len()
        )));
    }
    let order = sample_indices(seed, &[0x9107], n, MAX_PNG_POINTS);
    let (mut x0, mut x1, mut y0, mut y1) =
        (f32::INFINITY, f32::NEG_INFINITY, f32::INFINITY, f32::NEG_INFINITY);
    for r in embedding.outer_iter() {
        x0 = x0.min(r[0]);
        x1 = x1.max(r[0]);
        y0 = y0.min(r[1]);
        y1 = y1.max(r[1]);
    }
    if n == 0 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let (px, py) = (0.03 * (x1 - x0).max(1e-6), 0.03 * (y1 - y0).max(1e-6));
    let mut counts = vec![0usize; names.len()];
    for &g in groups {
        if let Some(c) = counts.get_mut(g as usize) {
            *c += 1;
        }
    }
    let p = Scatter {
        embedding,
        groups,
        names,
        counts,
        order,
        title,
        legend_title,
        bounds: (x0 - px, x1 + px, y0 - py, y1 + py),
    };
    write_both(
        stem,
        |r| draw_scatter(r, &p, MAX_PNG_POINTS),
        |r| draw_scatter(r, &p, MAX_SVG_POINTS),
    )
}

fn draw_objective<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, values: &[f64], title: &str) -> Drawn {
    root.fill(&WHITE).map_err(s)?;
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let (lo, hi) = if values.is_empty() {
        (0.0, 1.0)
    } else if hi > lo {
        (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    } else {
        (lo - 0.5 * lo.abs().max(1.0), hi + 0.5 * hi.abs().max(1.0))
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0.5f64..(values.len().max(1) as f64 + 0.5), lo..hi)
        .map_err(s)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("objective")
        .label_style((FONT, 13))
        .x_labels(values.len().clamp(2, 20))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|v| tick(*v))
        .draw()
        .map_err(s)?;
    let pts: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as f64 + 1.0, v))
        .collect();
    chart
        .draw_series(LineSeries::new(pts.iter().copied(), color(0).stroke_width(2)))
        .map_err(s)?;
    chart
        .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color(0).filled())))
        .map_err(s)?;
    Ok(())
}

/// Line plot of the objective per epoch; writes `STEM.png` and `STEM.svg`.
pub fn objective_plot(stem: &Path, values: &[f64], title: &str) -> Result<Vec<PathBuf>> {
    if values.iter().any(|v| !v.is_finite()) {
        return Err(AnalysisError::InvalidData(
            "objective plot: a value is not finite".into(),
        ));
    }
    write_both(
        stem,
        |r| draw_objective(r, values, title),
        |r| draw_objective(r, values, title),
    )
}

struct Composition<'a> {
    /// fractions[c][d]: share of cluster c's cells from dataset d.
    fractions: Vec<Vec<f64>>,
    sizes: Vec<usize>,
    dataset_sizes: Vec<usize>,
    overall: Vec<f64>,
    names: &'a [String],
    title: &'a str,
}

fn draw_composition<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &Composition<'_>) -> Drawn {
    root.fill(&WHITE).map_err(s)?;
    let (main, side) = root.split_horizontally(SIZE.0 - 260);
    let nc = p.fractions.len();
    let mut chart = ChartBuilder::on(&main)
        .caption(p.title, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.5f64..(nc as f64 - 0.5), 0f64..1f64)
        .map_err(s)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_desc("cluster")
        .y_desc("share of the cluster's cells")
        .label_style((FONT, 13))
        .x_labels(nc.clamp(1, 40))
        .x_label_formatter(&|x| {
            let r = x.round();
            if (x - r).abs() < 1e-6 && r >= 0.0 {
                format!("{}", r as i64)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .draw()
        .map_err(s)?;
    for (c, fr) in p.fractions.iter().enumerate() {
        let mut base = 0.0;
        for (d, &f) in fr.iter().enumerate() {
            if f > 0.0 {
                let x = c as f64;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x - 0.4, base), (x + 0.4, base + f)],
                        color(d).filled(),
                    )))
                    .map_err(s)?;
            }
            base += f;
        }
    }
    // Dashed lines: the overall shares (a well-mixed cluster matches them).
    let mut cum = 0.0;
    for &f in &p.overall[..p.overall.len().saturating_sub(1)] {
        cum += f;
        let x0 = -0.5;
        let segs = (nc * 4).max(4);
        for k in (0..segs).step_by(2) {
            let a = x0 + k as f64 * nc as f64 / segs as f64;
            let b = x0 + (k + 1) as f64 * nc as f64 / segs as f64;
            chart
                .draw_series(LineSeries::new([(a, cum), (b, cum)], BLACK.stroke_width(2)))
                .map_err(s)?;
        }
    }
    legend(&side, "dataset (cells)", p.names, &p.dataset_sizes)?;
    let y = 38 + 22 * p.names.len().min(32) as i32 + 20;
    side.draw(&Text::new(
        "dashed: overall shares".to_string(),
        (10, y),
        (FONT, 13),
    ))
    .map_err(s)?;
    side.draw(&Text::new(
        format!(
            "{} clusters, sizes {}–{}",
            nc,
            p.sizes.iter().min().unwrap_or(&0),
            p.sizes.iter().max().unwrap_or(&0)
        ),
        (10, y + 20),
        (FONT, 13),
    ))
    .map_err(s)?;
    Ok(())
}

/// Stacked bars: for each cluster, the share of its cells from each
/// dataset, with dashed lines at the overall shares; writes `STEM.png` and
/// `STEM.svg`.
pub fn composition_plot(
    stem: &Path,
    clusters: &[u32],
    datasets: &[u32],
    dataset_names: &[String],
    title: &str,
) -> Result<Vec<PathBuf>> {
    if clusters.len() != datasets.len() {
        return Err(AnalysisError::InvalidData(
            "composition plot: lengths differ".into(),
        ));
    }
    let nc = clusters.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
    let nd = dataset_names.len();
    let mut counts = vec![vec![0usize; nd]; nc];
    let mut overall = vec![0usize; nd];
    for (&c, &d) in clusters.iter().zip(datasets) {
        if (d as usize) < nd {
            counts[c as usize][d as usize] += 1;
            overall[d as usize] += 1;
        }
    }
    let sizes: Vec<usize> = counts.iter().map(|r| r.iter().sum()).collect();
    let fractions = counts
        .iter()
        .zip(&sizes)
        .map(|(r, &t)| r.iter().map(|&x| x as f64 / t.max(1) as f64).collect())
        .collect();
    let total: usize = overall.iter().sum();
    let p = Composition {
        fractions,
        sizes,
        overall: overall.iter().map(|&x| x as f64 / total.max(1) as f64).collect(),
        dataset_sizes: overall,
        names: dataset_names,
        title,
    };
    write_both(stem, |r| draw_composition(r, &p), |r| draw_composition(r, &p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn writes_png_and_svg_with_text() {
        let dir = std::env::temp_dir().join(format!("inmf-analysis-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut e = Array2::<f32>::zeros((300, 2));
        let groups: Vec<u32> = (0..300).map(|i| (i % 3) as u32).collect();
        for i in 0..300 {
            e[[i, 0]] = (i % 3) as f32 * 5.0 + (i as f32 * 0.37).sin();
            e[[i, 1]] = (i as f32 * 0.11).cos();
        }
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let files = embedding_plot(&dir.join("emb"), e.view(), &groups, &names, "test", "group", 1).unwrap();
        assert_eq!(files.len(), 2);
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() > 1000, "{f:?}");
        }
        let svg = std::fs::read_to_string(dir.join("emb.svg")).unwrap();
        assert!(svg.contains("UMAP 1") && svg.contains("a (100)"));
        assert_eq!(&std::fs::read(dir.join("emb.png")).unwrap()[1..4], b"PNG");
        objective_plot(&dir.join("obj"), &[5.0, 3.0, 2.5], "objective").unwrap();
        objective_plot(&dir.join("obj1"), &[5.0], "objective").unwrap();
        composition_plot(
            &dir.join("comp"),
            &[0, 0, 1, 1, 2],
            &[0, 1, 0, 1, 1],
            &names[..2],
            "composition",
        )
        .unwrap();
        assert!(embedding_plot(&dir.join("bad"), e.view(), &groups[..5], &names, "t", "g", 1).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Plots (plotters, PNG + SVG) and a Markdown/HTML summary from an evaluation's results
//! directory: predicted vs actual per application, training curves, MAE vs k.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{io_err, Result, TrainError};
use crate::eval::EvalResults;

mod html;
pub use html::markdown_to_html;

fn perr<E: std::fmt::Display>(e: E) -> TrainError {
    TrainError::Plot(e.to_string())
}

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One training curve: (epoch, train loss, validation MAE in points).
pub type Curve = Vec<(usize, f64, f64)>;

/// Reads `curve.csv` files (`epoch,train_loss,val_mae`) under `dir`, keyed by their relative dir.
pub fn find_curves(dir: &Path) -> BTreeMap<String, Curve> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "curve.csv") {
                if let Ok(text) = std::fs::read_to_string(&p) {
                    let c: Curve = text
                        .lines()
                        .skip(1)
                        .filter_map(|l| {
                            let v: Vec<&str> = l.split(',').collect();
                            Some((
                                v.first()?.parse().ok()?,
                                v.get(1)?.parse().ok()?,
                                v.get(2)?.parse().ok()?,
                            ))
                        })
                        .collect();
                    let key = d.strip_prefix(dir).unwrap_or(&d).display().to_string();
                    out.insert(key, c);
                }
            }
        }
    }
    out
}

fn scatter_panels<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    res: &EvalResults,
    model: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(perr)?;
    let apps: Vec<String> = res
        .predictions
        .iter()
        .filter(|r| r.model == model && r.k == 0)
        .map(|r| r.app.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if apps.is_empty() {
        return Ok(());
    }
    let cols = (apps.len() as f64).sqrt().ceil() as usize;
    let rows = apps.len().div_ceil(cols);
    let root = root
        .titled(
            &format!("{model}: predicted vs actual P per test application"),
            ("sans-serif", 22),
        )
        .map_err(perr)?;
    let panels = root.split_evenly((rows, cols));
    for (i, app) in apps.iter().enumerate() {
        let pts: Vec<(f64, f64)> = res
            .predictions
            .iter()
            .filter(|r| r.model == model && r.k == 0 && &r.app == app)
            .map(|r| (r.p, r.p_hat))
            .collect();
        let mae =
            pts.iter().map(|(a, b)| (a - b).abs()).sum::<f64>() / pts.len().max(1) as f64 * 100.0;
        let mut chart = ChartBuilder::on(&panels[i])
            .caption(format!("{app} (MAE {mae:.1})"), ("sans-serif", 15))
            .margin(6)
            .x_label_area_size(28)
            .y_label_area_size(36)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc("actual P")
            .y_desc("predicted")
            .x_labels(5)
            .y_labels(5)
            .draw()
            .map_err(perr)?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.4)))
            .map_err(perr)?;
        let c = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(
                pts.iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, c.mix(0.6).filled())),
            )
            .map_err(perr)?;
    }
    root.present().map_err(perr)?;
    Ok(())
}

fn mae_vs_k<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, res: &EvalResults) -> Result<bool>
where
    DB::ErrorType: 'static,
{
    let ks: Vec<usize> = res
        .models
        .iter()
        .flat_map(|m| m.early.keys().copied())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if ks.is_empty() {
        return Ok(false);
    }
    root.fill(&WHITE).map_err(perr)?;
    let kmax = *ks.last().unwrap_or(&1) as f64 * 1.25;
    let ymax = res
        .models
        .iter()
        .flat_map(|m| {
            m.early
                .values()
                .map(|s| s.mae_mean)
                .chain([m.summary.mae_mean])
        })
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Early prediction: MAE using the first k seconds",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..kmax, 0.0..ymax)
        .map_err(perr)?;
    chart
        .configure_mesh()
        .x_desc("k (seconds; rightmost = whole run)")
        .y_desc("MAE (points)")
        .draw()
        .map_err(perr)?;
    for (i, m) in res.models.iter().enumerate() {
        let mut pts: Vec<(f64, f64)> = m
            .early
            .iter()
            .map(|(k, s)| (*k as f64, s.mae_mean))
            .collect();
        pts.push((kmax, m.summary.mae_mean));
        let c = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(perr)?
            .label(m.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(perr)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(perr)?;
    root.present().map_err(perr)?;
    Ok(true)
}

fn curves_plot<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    curves: &BTreeMap<String, Curve>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(perr)?;
    let (left, right) = root.split_horizontally((50).percent_width());
    let emax = curves
        .values()
        .flat_map(|c| c.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    for (side, title, pick) in [
        (left, "training loss", 1usize),
        (right, "validation MAE (points)", 2),
    ] {
        let val = |p: &(usize, f64, f64)| if pick == 1 { p.1 } else { p.2 };
        let ymax = curves
            .values()
            .flat_map(|c| c.iter().map(val))
            .filter(|v| v.is_finite())
            .fold(1e-9f64, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&side)
            .caption(title, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..emax, 0.0..ymax)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .draw()
            .map_err(perr)?;
        for (i, (name, c)) in curves.iter().enumerate() {
            let col = PALETTE[i % PALETTE.len()];
            let s = chart
                .draw_series(LineSeries::new(
                    c.iter()
                        .filter(|p| val(p).is_finite())
                        .map(|p| (p.0 as f64, val(p))),
                    col,
                ))
                .map_err(perr)?;
            if curves.len() <= 12 {
                s.label(name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], col));
            }
        }
        if curves.len() <= 12 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(perr)?;
        }
    }
    root.present().map_err(perr)?;
    Ok(())
}

/// Writes every plot and `report.md` / `report.html` into `out`. Returns the files written.
/// A plot that cannot be drawn (e.g. no font on the machine) is skipped with a warning.
pub fn write_report(results_dir: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let res = EvalResults::read(results_dir)?;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let mut files = Vec::new();
    let mut images: Vec<(String, String)> = Vec::new();
    let warn = |what: &str, e: TrainError| tracing::warn!("plot {what} skipped: {e}");
    let models: Vec<String> = res.models.iter().map(|m| m.name.clone()).collect();
    for m in &models {
        let n_apps = res
            .predictions
            .iter()
            .filter(|r| &r.model == m && r.k == 0)
            .map(|r| &r.app)
            .collect::<BTreeSet<_>>()
            .len();
        let cols = (n_apps as f64).sqrt().ceil().max(1.0) as u32;
        let rows = (n_apps as u32).div_ceil(cols).max(1);
        let size = (300 * cols + 20, 280 * rows + 40);
        let stem = format!("scatter-{m}");
        let png = out.join(format!("{stem}.png"));
        let svg = out.join(format!("{stem}.svg"));
        let r1 = scatter_panels(BitMapBackend::new(&png, size).into_drawing_area(), &res, m);
        let r2 = scatter_panels(SVGBackend::new(&svg, size).into_drawing_area(), &res, m);
        match r1.and(r2) {
            Ok(()) => {
                files.push(png);
                files.push(svg);
                images.push((format!("{m}: predicted vs actual"), format!("{stem}.png")));
            }
            Err(e) => warn(&stem, e),
        }
    }
    let png = out.join("mae-vs-k.png");
    let svg = out.join("mae-vs-k.svg");
    match mae_vs_k(
        BitMapBackend::new(&png, (900, 560)).into_drawing_area(),
        &res,
    )
    .and_then(|a| {
        mae_vs_k(SVGBackend::new(&svg, (900, 560)).into_drawing_area(), &res).map(|b| a && b)
    }) {
        Ok(true) => {
            files.push(png);
            files.push(svg);
            images.insert(
                0,
                ("MAE vs k (early prediction)".into(), "mae-vs-k.png".into()),
            );
        }
        Ok(false) => {}
        Err(e) => warn("mae-vs-k", e),
    }
    let curves = find_curves(results_dir);
    if !curves.is_empty() {
        let png = out.join("training-curves.png");
        let svg = out.join("training-curves.svg");
        match curves_plot(
            BitMapBackend::new(&png, (1200, 500)).into_drawing_area(),
            &curves,
        )
        .and(curves_plot(
            SVGBackend::new(&svg, (1200, 500)).into_drawing_area(),
            &curves,
        )) {
            Ok(()) => {
                files.push(png);
                files.push(svg);
                images.push(("Training curves".into(), "training-curves.png".into()));
            }
            Err(e) => warn("training-curves", e),
        }
    }
    let mut md = res.markdown();
    md.push_str("\n## Plots\n\n");
    for (title, file) in &images {
        md.push_str(&format!("### {title}\n\n![{title}]({file})\n\n"));
    }
    let p = out.join("report.md");
    std::fs::write(&p, &md).map_err(io_err(&p))?;
    files.push(p);
    let p = out.join("report.html");
    std::fs::write(&p, markdown_to_html(&md)).map_err(io_err(&p))?;
    files.push(p);
    Ok(files)
}

/// The marker lines of the README block that [`update_readme`] rewrites for results named
/// `name` (the results directory's last component, e.g. `paper`).
pub fn readme_markers(name: &str) -> (String, String) {
    (
        format!("<!-- cloudformer report {name} begin -->"),
        format!("<!-- cloudformer report {name} end -->"),
    )
}

/// Replaces the block between the markers of [`readme_markers`] in `readme` with the headline
/// table of the evaluation in `results_dir` (its noise floor, MAE/MSE per model, goal lines), so
/// a README's numbers come from the results file, not from hand copying. The file is rewritten
/// atomically (a temporary file renamed over it); missing or misordered markers are an error
/// naming the lines to add, and the README is left untouched.
pub fn update_readme(readme: &Path, results_dir: &Path) -> Result<PathBuf> {
    let res = EvalResults::read(results_dir)?;
    let name = results_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            TrainError::Invalid(format!("{} has no usable name", results_dir.display()))
        })?;
    let (begin, end) = readme_markers(name);
    let text = std::fs::read_to_string(readme).map_err(io_err(readme))?;
    let (Some(b), Some(e)) = (text.find(&begin), text.find(&end)) else {
        return Err(TrainError::Invalid(format!(
            "{} has no block for the results {name:?}: add the lines\n{begin}\n{end}\nwhere the table belongs",
            readme.display()
        )));
    };
    if e < b {
        return Err(TrainError::Invalid(format!(
            "{}: {end:?} comes before {begin:?}",
            readme.display()
        )));
    }
    let o = &res.options;
    let block = format!(
        "{begin}\n<!-- generated by `cloudformer report --results {} --readme {}`; edit the results, not this block -->\n\n{:?} protocol: {} tenant-runs, {} applications, {} splits, seed {}; full summary with early prediction and per-application errors in `{}/summary.md`.\n\n{}\n",
        results_dir.display(),
        readme.display(),
        o.protocol,
        res.n_runs,
        res.apps.len(),
        res.splits.len(),
        o.seed,
        results_dir.display(),
        res.headline_markdown().trim_end()
    );
    let mut out = String::with_capacity(text.len() + block.len());
    out.push_str(&text[..b]);
    out.push_str(&block);
    out.push_str(&text[e..]);
    let tmp = readme.with_extension("md.tmp");
    std::fs::write(&tmp, out).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, readme).map_err(io_err(readme))?;
    Ok(readme.to_path_buf())
}

//! `faultline detect --plot`: detection time against mistake rate, one curve per detector
//! and case, one point per threshold. Drawn with plotters' SVG backend, whose text is SVG
//! `<text>` that any viewer renders (no font files needed).

use anyhow::{Result, anyhow};
use faultline::detect::eval::DetectRow;
use plotters::prelude::*;

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One point per row that has both a median detection time and a mistake rate: x is the
/// median detection time in seconds, y the mistakes per hour of up time per monitored
/// pair (a row without mistakes is drawn at the floor of the log axis, and says so).
pub fn svg(title: &str, rows: &[DetectRow]) -> Result<String> {
    let mut curves: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let floor = 1e-3;
    for r in rows {
        let Some(td) = r.qos.detection_time_percentile(50.0) else { continue };
        let rate = r.qos.mistake_rate_per_s().unwrap_or(0.0) * 3600.0;
        let label = format!("{} ({})", r.detector, r.case);
        let point = (td.as_millis_f64() / 1e3, rate.max(floor));
        match curves.iter_mut().find(|(l, _)| *l == label) {
            Some((_, points)) => points.push(point),
            None => curves.push((label, vec![point])),
        }
    }
    if curves.is_empty() {
        return Err(anyhow!(
            "--plot: no row has a detection time; the plot needs a case in which a node fails (crash, fail-stop or gray)"
        ));
    }
    let x_max = curves.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)).fold(0.0f64, f64::max) * 1.1 + 0.1;
    let y_max = curves.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)).fold(floor, f64::max) * 2.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 600)).into_drawing_area();
        fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
            anyhow!("--plot: {e}")
        }
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{title}: detection time vs mistake rate"), ("sans-serif", 22))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, (floor..y_max).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("median detection time T_D (s)")
            .y_desc(format!("mistakes per pair-hour (floor {floor} = none)"))
            .draw()
            .map_err(err)?;
        for (i, (label, points)) in curves.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let mut points = points.clone();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(err)?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled()))).map_err(err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// `faultline check --plot`: the counterexample's timeline, a row per process and time
/// running right (event order, compressed to the events shown). The set that cannot be
/// ordered is red, the longest partial linearisation green with each step's number, the
/// rest grey; an operation of unknown outcome runs to the right edge, dashed.
pub fn timeline(title: &str, c: &faultline::linear::Counterexample) -> Result<String> {
    use faultline::linear::render::{call_text, window};
    let shown = window(c);
    let mut processes: Vec<u64> = shown.iter().map(|m| m.op.process).collect();
    processes.sort_unstable();
    processes.dedup();
    let mut ticks: Vec<u64> = shown.iter().flat_map(|m| [Some(m.op.invoke), m.op.complete]).flatten().collect();
    ticks.sort_unstable();
    ticks.dedup();
    let end = ticks.len() as i32 + 1;
    let x = |pos: Option<u64>| pos.map_or(end, |p| ticks.binary_search(&p).unwrap_or(0) as i32);
    let (row_h, width) = (46i32, 1200i32);
    let height = 110 + row_h * processes.len() as i32;
    let (left, right) = (70i32, width - 20);
    let scale = |t: i32| left + (right - left) * t / end.max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width as u32, height as u32)).into_drawing_area();
        fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
            anyhow!("--plot: {e}")
        }
        root.fill(&WHITE).map_err(err)?;
        root.draw(&Text::new(title.to_owned(), (20, 14), ("sans-serif", 20))).map_err(err)?;
        let legend = "red: cannot be ordered (the smallest set); green #k: k-th in the longest partial \
                      linearisation; grey: other operations; time runs right (event order)";
        root.draw(&Text::new(legend.to_owned(), (20, 42), ("sans-serif", 13))).map_err(err)?;
        let red = RGBColor(214, 39, 40);
        let green = RGBColor(44, 160, 44);
        let grey = RGBColor(160, 160, 160);
        for (row, p) in processes.iter().enumerate() {
            let y = 80 + row_h * row as i32;
            root.draw(&Text::new(format!("p{p}"), (20, y + 8), ("sans-serif", 14))).map_err(err)?;
            root.draw(&PathElement::new(vec![(left, y + 30), (right, y + 30)], RGBColor(230, 230, 230)))
                .map_err(err)?;
        }
        for m in &shown {
            let row = processes.binary_search(&m.op.process).unwrap_or(0) as i32;
            let y = 80 + row_h * row;
            let (x0, x1) = (scale(x(Some(m.op.invoke))), scale(x(m.op.complete)).max(scale(x(Some(m.op.invoke))) + 6));
            let colour = if m.in_set {
                red
            } else if m.placed.is_some() {
                green
            } else {
                grey
            };
            let style = if m.op.is_info() { colour.mix(0.35).filled() } else { colour.mix(0.8).filled() };
            root.draw(&Rectangle::new([(x0, y + 4), (x1, y + 28)], style)).map_err(err)?;
            let mut label = call_text(m.op);
            if let Some(v) = &m.op.output {
                label = format!("{label} -> {v}");
            }
            if let Some(k) = m.placed {
                label = format!("#{k} {label}");
            }
            if m.op.is_info() {
                label.push_str(" (info)");
            }
            root.draw(&Text::new(label, (x0 + 3, y + 10), ("sans-serif", 12))).map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

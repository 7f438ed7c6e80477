//! The page of `anpr eval --html`: the scores, small plates apart from the rest, a character
//! confusion table and every miss with its plate crop.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use image::GenericImageView;

use super::{data_uri, escape, page};
use crate::eval::{Confusion, Miss, Prediction, SMALL_PLATE_PX, Sample, Scores, misses};

/// Height the plate crops of the misses are shown at, in pixels.
const CROP_HEIGHT: u32 = 48;
/// Widest a crop is shown.
const CROP_MAX_WIDTH: u32 = 360;

/// What [`eval_page`] reports on.
pub struct EvalPage<'a> {
    /// The dataset folder, as given.
    pub dataset: &'a str,
    pub samples: &'a [Sample],
    /// The recognizer's predictions, one per sample (the misses come from these).
    pub predictions: &'a [Option<Prediction>],
    pub scores: &'a BTreeMap<String, Scores>,
    /// The baseline's scores, shown beside the recognizer's.
    pub baseline: Option<&'a BTreeMap<String, Scores>>,
}

/// The whole page (see the module documentation). Images of the misses are read again from
/// their files to cut out the plate; one that cannot be read is shown without a crop.
#[must_use]
pub fn eval_page(p: &EvalPage<'_>) -> String {
    let missed = misses(p.samples, p.predictions);
    let confusion = Confusion::of(&missed);
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<p class=\"note\">Dataset <code>{}</code>: {} labelled plates. A plate is found when a \
         reported box overlaps its label box by IoU 0.3 or more; small plates are those \
         narrower than {SMALL_PLATE_PX} px in the image.</p>",
        escape(p.dataset),
        p.samples.len()
    );
    scores_table(&mut body, p.scores, p.baseline);
    sizes_table(&mut body, p.scores, p.baseline);
    flagged_table(&mut body, p.scores);
    confusion_table(&mut body, &confusion);
    misses_table(&mut body, &missed);
    page("anpr eval", &body)
}

fn pipelines<'a>(
    scores: &'a BTreeMap<String, Scores>,
    baseline: Option<&'a BTreeMap<String, Scores>>,
) -> Vec<(&'a str, &'a str, &'a Scores)> {
    let mut rows = Vec::new();
    for (name, s) in scores {
        rows.push((name.as_str(), "rust", s));
        if let Some(b) = baseline.and_then(|b| b.get(name)) {
            rows.push((name.as_str(), "python", b));
        }
    }
    rows
}

/// The scores, with the same figures as the text table.
fn scores_table(
    out: &mut String,
    scores: &BTreeMap<String, Scores>,
    baseline: Option<&BTreeMap<String, Scores>>,
) {
    out.push_str(
        "<h2>Scores</h2>\n<table id=\"scores\">\n<tr><th class=\"l\">set</th>\
         <th class=\"l\">pipeline</th><th>images</th><th>detected</th><th>extra</th>\
         <th>exact</th><th>within 1</th><th>vehicle</th><th>ms/image</th>\
         <th class=\"l\">vehicle types</th></tr>\n",
    );
    for (name, who, s) in pipelines(scores, baseline) {
        let types: Vec<String> = s
            .vehicle_types
            .iter()
            .map(|(k, n)| format!("{} {n}", escape(k)))
            .collect();
        let _ = writeln!(
            out,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{who}</td><td>{}</td><td>{:.1}%</td>\
             <td>{}</td><td>{:.1}%</td><td>{:.1}%</td><td>{:.1}%</td><td>{:.1}</td>\
             <td class=\"l\">{}</td></tr>",
            escape(name),
            s.images,
            s.recall(),
            s.extra_boxes,
            s.exact_rate(),
            s.within_one_rate(),
            s.vehicle_rate(),
            s.ms_per_image(),
            types.join(", ")
        );
    }
    out.push_str("</table>\n");
}

/// Small plates apart from the rest, with the same figures as the text lines.
fn sizes_table(
    out: &mut String,
    scores: &BTreeMap<String, Scores>,
    baseline: Option<&BTreeMap<String, Scores>>,
) {
    let _ = writeln!(
        out,
        "<h2>Small plates (narrower than {SMALL_PLATE_PX} px) and the rest</h2>\n\
         <table id=\"sizes\">\n<tr><th class=\"l\" rowspan=\"2\">set</th>\
         <th class=\"l\" rowspan=\"2\">pipeline</th><th colspan=\"5\">&lt; {SMALL_PLATE_PX} px</th>\
         <th colspan=\"5\">wider</th></tr>\n<tr><th>plates</th><th>found</th><th>recall</th>\
         <th>exact</th><th>exact rate</th><th>plates</th><th>found</th><th>recall</th>\
         <th>exact</th><th>exact rate</th></tr>"
    );
    for (name, who, s) in pipelines(scores, baseline) {
        let _ = write!(
            out,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{who}</td>",
            escape(name)
        );
        for z in [&s.small, &s.large] {
            let _ = write!(
                out,
                "<td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td><td>{:.1}%</td>",
                z.plates,
                z.detected,
                z.recall(),
                z.exact,
                z.exact_rate()
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// The device's low-confidence flags per set, with the same figures as the text's `flagged`
/// lines: found plates flagged, how many of those were exact, the misreads flagged and those
/// left unflagged.
fn flagged_table(out: &mut String, scores: &BTreeMap<String, Scores>) {
    out.push_str(
        "<h2>Low-confidence flags</h2>\n<p class=\"note\">A reading the device flags \
         (<code>plate.low_confidence</code>) goes to a person when it matches a list; an \
         unflagged misread is taken as read.</p>\n<table id=\"flagged\">\n<tr>\
         <th class=\"l\">set</th><th>flagged</th><th>found</th><th>flagged exact</th>\
         <th>misreads flagged</th><th>misreads</th><th>misreads unflagged</th></tr>\n",
    );
    for (name, s) in scores {
        let _ = write!(out, "<tr><td class=\"l\">{}</td>", escape(name));
        for n in s.flag_figures() {
            let _ = write!(out, "<td>{n}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn char_label(c: Option<char>) -> String {
    c.map_or_else(
        || "<span class=\"none\">∅</span>".to_string(),
        |c| escape(&c.to_string()),
    )
}

/// Truth characters down, read characters across, over the misreads' alignments.
fn confusion_table(out: &mut String, c: &Confusion) {
    let _ = writeln!(
        out,
        "<h2>Character confusions</h2>\n<p class=\"note\">Each misread (a plate found but not \
         read exactly; {} of them) aligned with its truth by the fewest edits: a row is the \
         true character, a column the character read; ∅ as read is a character missing from \
         the read, ∅ as truth one read in excess. Characters read right are not counted.</p>",
        c.misreads
    );
    if c.pairs.is_empty() {
        out.push_str("<p>No misreads.</p>\n");
        return;
    }
    let truths: BTreeSet<Option<char>> = c.pairs.keys().map(|k| k.0).collect();
    let reads: BTreeSet<Option<char>> = c.pairs.keys().map(|k| k.1).collect();
    out.push_str("<table id=\"confusion\">\n<tr><th>truth \\ read</th>");
    for r in &reads {
        let _ = write!(out, "<th>{}</th>", char_label(*r));
    }
    out.push_str("</tr>\n");
    for t in &truths {
        let _ = write!(out, "<tr><th>{}</th>", char_label(*t));
        for r in &reads {
            match c.pairs.get(&(*t, *r)) {
                Some(n) => {
                    let _ = write!(out, "<td>{n}</td>");
                }
                None => out.push_str("<td></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n<p>Most frequent: ");
    let top: Vec<String> = c
        .ranked()
        .iter()
        .take(12)
        .map(|((t, r), n)| format!("{} → {} ×{n}", char_label(*t), char_label(*r)))
        .collect();
    out.push_str(&top.join(", "));
    out.push_str("</p>\n");
}

/// The read text with each character's confidence under it (when there is one per
/// character), coloured from red (unsure) to green (sure).
fn read_cell(m: &Miss<'_>) -> String {
    let Some(read) = m.read else {
        return if m.failed {
            "<span class=\"none\">image not processed</span>".into()
        } else {
            "<span class=\"none\">not found</span>".into()
        };
    };
    if read.is_empty() {
        return "<span class=\"none\">(empty)</span>".into();
    }
    let conf = m
        .detail
        .map(|d| d.char_confidences.as_slice())
        .unwrap_or_default();
    let chars: Vec<char> = read.chars().collect();
    if conf.len() != chars.len() {
        let listed: Vec<String> = conf.iter().map(|c| format!("{c:.2}")).collect();
        return format!(
            "<span class=\"plate\">{}</span> <span class=\"note\">{}</span>",
            escape(read),
            listed.join(" ")
        );
    }
    let mut out = String::from("<span class=\"plate\">");
    for (ch, c) in chars.iter().zip(conf) {
        let hue = (c.clamp(0.0, 1.0) * 120.0).round();
        let _ = write!(
            out,
            "<span class=\"c\" style=\"background:hsl({hue},70%,85%)\" title=\"{c:.3}\">{}<sub>{:.0}</sub></span>",
            escape(&ch.to_string()),
            c * 100.0
        );
    }
    out.push_str("</span>");
    out
}

/// The label box of `s` with a margin, cut out of its image and scaled to [`CROP_HEIGHT`],
/// as a JPEG `data:` URI; `None` when the image cannot be read.
fn crop_uri(s: &Sample) -> Option<String> {
    let img = image::open(&s.image).ok()?;
    let (w, h) = img.dimensions();
    let (mx, my) = (s.bbox.w * 0.15, s.bbox.h * 0.3);
    let x0 = (s.bbox.x - mx).max(0.0) as u32;
    let y0 = (s.bbox.y - my).max(0.0) as u32;
    let x1 = ((s.bbox.x + s.bbox.w + mx).max(0.0) as u32).min(w);
    let y1 = ((s.bbox.y + s.bbox.h + my).max(0.0) as u32).min(h);
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let crop = img.crop_imm(x0, y0, x1 - x0, y1 - y0).to_rgb8();
    let scale = (f64::from(CROP_HEIGHT) / f64::from(crop.height()))
        .min(f64::from(CROP_MAX_WIDTH) / f64::from(crop.width()));
    let (cw, ch) = (
        ((f64::from(crop.width()) * scale).round() as u32).max(1),
        ((f64::from(crop.height()) * scale).round() as u32).max(1),
    );
    let shown = image::imageops::resize(&crop, cw, ch, image::imageops::FilterType::Triangle);
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
        .encode_image(&shown)
        .ok()?;
    Some(data_uri("image/jpeg", &bytes))
}

/// Every miss: crop, image, set, plate width, truth, read with per-character confidence,
/// the view that won.
fn misses_table(out: &mut String, missed: &[Miss<'_>]) {
    let _ = writeln!(
        out,
        "<h2 id=\"misses-title\"><span id=\"misses-count\">{}</span> misses</h2>\n\
         <p class=\"note\">Every labelled plate not read exactly: not found, misread, or its image \
         not processed. The crop is the label box with a margin; under each character read is \
         its confidence in percent; the view is the cut of the box whose reading won \
         (<code>line</code>, <code>margin</code>, <code>stretched</code>, <code>wide</code>, \
         <code>rows</code>; \
         <code>deskewed</code> when read straightened); <em>flagged</em> marks a reading the \
         device reported low-confidence (<code>plate.low_confidence</code>: a list match on it \
         goes to a person), so an unflagged misread is one the device took as read.</p>",
        missed.len()
    );
    if missed.is_empty() {
        return;
    }
    out.push_str(
        "<table id=\"misses\" class=\"miss\">\n<tr><th class=\"l\">plate</th>\
         <th class=\"l\">image</th><th class=\"l\">set</th><th>width px</th>\
         <th class=\"l\">truth</th><th class=\"l\">read</th><th class=\"l\">view</th>\
         <th class=\"l\">flagged</th></tr>\n",
    );
    for m in missed {
        let s = m.sample;
        let crop = crop_uri(s).map_or_else(
            || "<span class=\"none\">no image</span>".to_string(),
            |uri| format!("<img src=\"{uri}\" alt=\"plate {}\">", escape(&s.text)),
        );
        let name = s
            .image
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().to_string());
        let view = m
            .detail
            .map(|d| d.view.as_str())
            .filter(|v| !v.is_empty())
            .map_or_else(|| "<span class=\"none\">–</span>".to_string(), escape);
        let flagged = match (m.read, m.detail) {
            (Some(_), Some(d)) if d.low_confidence => "flagged",
            (Some(_), _) => "no",
            (None, _) => "<span class=\"none\">–</span>",
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"l\">{crop}</td><td class=\"l\" title=\"{}\">{}</td>\
             <td class=\"l\">{}</td><td>{:.0}</td><td class=\"l plate\">{}</td>\
             <td class=\"l\">{}</td><td class=\"l\">{view}</td><td class=\"l\">{flagged}</td></tr>",
            escape(&s.image.display().to_string()),
            escape(&name),
            escape(&s.group),
            s.bbox.w,
            escape(&s.text),
            read_cell(m)
        );
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{ReadDetail, score};
    use anpr_types::BBox;
    use std::path::PathBuf;

    #[test]
    fn the_page_escapes_labels_and_reads_and_lists_every_miss() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("car.png");
        image::RgbImage::from_pixel(200, 100, image::Rgb([200, 200, 200]))
            .save(&image)
            .unwrap();
        let bbox = BBox {
            x: 50.0,
            y: 40.0,
            w: 80.0,
            h: 20.0,
        };
        let samples = vec![
            Sample {
                image: image.clone(),
                bbox,
                text: "<A&B>".into(),
                group: "x\"y".into(),
            },
            Sample {
                image: PathBuf::from("/nowhere/gone.jpg"),
                bbox,
                text: "OK1".into(),
                group: "x\"y".into(),
            },
        ];
        let preds = vec![
            Some(Prediction {
                plates: vec![(bbox, "<A8B>".into())],
                reads: vec![ReadDetail {
                    char_confidences: vec![0.9, 0.5, 0.4, 0.9, 0.8],
                    view: "stretched".into(),
                    low_confidence: true,
                }],
                ..Prediction::default()
            }),
            None,
        ];
        let scores = score(&samples, &preds);
        let html = eval_page(&EvalPage {
            dataset: "/data/<set>",
            samples: &samples,
            predictions: &preds,
            scores: &scores,
            baseline: None,
        });
        assert!(!html.contains("<A&B>") && !html.contains("<A8B>") && !html.contains("<set>"));
        assert!(html.contains("&lt;A&amp;B&gt;"), "the truth, escaped");
        assert!(html.contains("x&quot;y"), "the set, escaped");
        assert!(html.contains("<span id=\"misses-count\">2</span>"));
        assert!(html.contains("data:image/jpeg;base64,"), "the crop inline");
        assert!(
            html.contains("no image"),
            "an image gone is shown without a crop"
        );
        assert!(html.contains("image not processed"));
        assert!(html.contains("stretched"));
        assert!(
            html.contains("<td class=\"l\">stretched</td><td class=\"l\">flagged</td>"),
            "the misread is shown flagged low-confidence"
        );
        assert!(html.contains("title=\"0.500\""), "a character's confidence");
        assert!(html.contains("id=\"confusion\""));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing to fetch"
        );
    }
}

//! `anpr eval --dataset DIR`: scores the recognizer on folders in the openalpr benchmark format
//! (`<image>\t x y w h \t TEXT` per `.txt`, one plate per image), per country and overall.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anpr_track::edit_distance;
use anpr_types::BBox;
use anpr_vision::Recognizer;
use anyhow::{Context, Result, bail};
use serde::Serialize;

/// One labelled image.
#[derive(Debug, Clone)]
pub struct Sample {
    pub image: PathBuf,
    pub bbox: BBox,
    pub text: String,
    pub group: String,
}

/// Scores of one group of images.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scores {
    pub images: usize,
    pub failed: usize,
    pub detected: usize,
    pub exact: usize,
    pub within_one: usize,
    pub ms_total: f64,
}

impl Scores {
    fn pct(n: usize, d: usize) -> f64 {
        if d == 0 {
            0.0
        } else {
            100.0 * n as f64 / d as f64
        }
    }
    #[must_use]
    pub fn recall(&self) -> f64 {
        Self::pct(self.detected, self.images)
    }
    #[must_use]
    pub fn exact_rate(&self) -> f64 {
        Self::pct(self.exact, self.images)
    }
    #[must_use]
    pub fn within_one_rate(&self) -> f64 {
        Self::pct(self.within_one, self.images)
    }
    #[must_use]
    pub fn ms_per_image(&self) -> f64 {
        self.ms_total / self.images.max(1) as f64
    }
    fn add(&mut self, o: &Scores) {
        self.images += o.images;
        self.failed += o.failed;
        self.detected += o.detected;
        self.exact += o.exact;
        self.within_one += o.within_one;
        self.ms_total += o.ms_total;
    }
}

/// Reads every `.txt` label under `dir` (recursively one level: `dir/<country>/*.txt`).
pub fn load_dataset(dir: &Path) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)
            .with_context(|| format!("cannot read dataset folder {}", d.display()))?
        {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "txt") {
                let text = std::fs::read_to_string(&p)?;
                let group = d
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().to_string());
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    if f.len() < 6 {
                        bail!(
                            "{}: expected `<image> x y w h TEXT`, found {line:?}",
                            p.display()
                        );
                    }
                    let n = |i: usize| {
                        f[i].parse::<f32>()
                            .with_context(|| format!("{}: bad number {:?}", p.display(), f[i]))
                    };
                    out.push(Sample {
                        image: d.join(f[0]),
                        bbox: BBox {
                            x: n(1)?,
                            y: n(2)?,
                            w: n(3)?,
                            h: n(4)?,
                        },
                        text: f[5..].concat().to_uppercase(),
                        group: group.clone(),
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| a.image.cmp(&b.image));
    if out.is_empty() {
        bail!("no labels (*.txt) found under {}", dir.display());
    }
    Ok(out)
}

/// Runs the recognizer over the samples; returns scores per group.
pub fn evaluate(
    rec: &mut Recognizer,
    samples: &[Sample],
    mut progress: impl FnMut(usize, usize),
) -> BTreeMap<String, Scores> {
    let mut groups: BTreeMap<String, Scores> = BTreeMap::new();
    for (i, s) in samples.iter().enumerate() {
        progress(i, samples.len());
        let g = groups.entry(s.group.clone()).or_default();
        g.images += 1;
        let Ok(frame) = crate::detect::load_rgb(&s.image) else {
            g.failed += 1;
            continue;
        };
        let t = Instant::now();
        let Ok(r) = rec.process(&frame) else {
            g.failed += 1;
            continue;
        };
        g.ms_total += t.elapsed().as_secs_f64() * 1000.0;
        let hit = r
            .plates
            .iter()
            .filter(|p| p.bbox.iou(&s.bbox) >= 0.3)
            .max_by(|a, b| a.bbox.iou(&s.bbox).total_cmp(&b.bbox.iou(&s.bbox)));
        if let Some(p) = hit {
            g.detected += 1;
            g.exact += usize::from(p.text == s.text);
            g.within_one += usize::from(edit_distance(&p.text, &s.text) <= 1);
        }
    }
    let mut all = Scores::default();
    for g in groups.values() {
        all.add(g);
    }
    groups.insert("all".into(), all);
    groups
}

//! The label format of `anpr eval` (the openalpr benchmark's): one `.txt` file per image or
//! per folder, each line `<image> x y w h TEXT`.
//!
//! This file depends on nothing but `anpr_types` and `anyhow`, so that the fuzz target of the
//! parser (`fuzz/fuzz_targets/eval_labels.rs`) compiles it as it is without building the
//! recognizer.

use std::path::{Path, PathBuf};

use anpr_types::BBox;
use anyhow::{Context, Result, bail};

/// One labelled image.
#[derive(Debug, Clone)]
pub struct Sample {
    pub image: PathBuf,
    pub bbox: BBox,
    pub text: String,
    pub group: String,
}

/// Parses the text of one label file: `<image> x y w h TEXT` per line (the text may contain
/// spaces, which are dropped; blank lines are skipped). Images are resolved against `dir`, the
/// samples fall in `group`, and `origin` names the file in errors.
pub fn parse_labels(text: &str, dir: &Path, group: &str, origin: &Path) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 {
            bail!(
                "{}: expected `<image> x y w h TEXT`, found {line:?}",
                origin.display()
            );
        }
        let n = |i: usize| {
            f[i].parse::<f32>()
                .with_context(|| format!("{}: bad number {:?}", origin.display(), f[i]))
        };
        out.push(Sample {
            image: dir.join(f[0]),
            bbox: BBox {
                x: n(1)?,
                y: n(2)?,
                w: n(3)?,
                h: n(4)?,
            },
            text: f[5..].concat().to_uppercase(),
            group: group.to_string(),
        });
    }
    Ok(out)
}

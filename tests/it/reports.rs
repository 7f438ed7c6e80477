//! The HTML reports of `anpr eval --html` and `anpr bench --html`, opened in headless Chromium
//! and compared with the text each command prints: the same counts and rates, the same number
//! of misses as plates not read exactly, small plates apart from the rest. On generated road
//! images (plates drawn here, some narrower than 90 px) and, when `../shared/data/openalpr` is
//! there, on four of its photos (read where they lie, never copied).
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anpr_scene::clip::{manifest_with, write_clip_with};

use crate::util;

/// The text of each cell of each row of the table with `id` in `dom`, tags dropped.
fn table_rows(dom: &str, id: &str) -> Vec<Vec<String>> {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id} in the page"));
    let table = &dom[start..start + dom[start..].find("</table>").unwrap()];
    table
        .split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    strip_tags(&cell[cell.find('>').unwrap() + 1..cell.find("</td>").unwrap()])
                })
                .collect()
        })
        .filter(|cells: &Vec<String>| !cells.is_empty())
        .collect()
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in html.chars() {
        match c {
            '<' => inside = true,
            '>' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .trim()
        .to_string()
}

/// The numbers in `text`, as written.
fn numbers(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|t| t.trim_matches('.'))
        .filter(|t| !t.is_empty() && t.chars().any(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect()
}

fn anpr(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "anpr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn config(dir: &Path) -> std::path::PathBuf {
    util::write_config(dir, "KZ-TEST-REPORTS", "unused.mp4", "mqtt://127.0.0.1:1")
}

/// Runs `anpr eval --html --json` on `dataset`, opens the page in Chromium and checks it
/// against the text output and the JSON; returns the JSON scores.
async fn eval_page_shows_what_eval_prints(dataset: &Path) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let (html, json) = (dir.path().join("eval.html"), dir.path().join("eval.json"));
    let config = config(dir.path());
    let text = anpr(&[
        "eval".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--dataset".as_ref(),
        dataset.as_os_str(),
        "--json".as_ref(),
        json.as_os_str(),
        "--html".as_ref(),
        html.as_os_str(),
    ]);
    let scores: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "the page fetches nothing"
    );
    let dom = util::chromium_dom(format!("file://{}", html.display())).await;

    let score_rows = table_rows(&dom, "scores");
    let size_rows = table_rows(&dom, "sizes");
    let flag_rows = table_rows(&dom, "flagged");
    let mut seen = (0, 0, 0);
    for line in text.lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.len() >= 3 && tokens[1] == "flagged" {
            // `N of M found flagged (K exact); misreads flagged F of W, unflagged U`
            let got = numbers(&tokens[2..].join(" "));
            let row = flag_rows
                .iter()
                .find(|r| r[0] == tokens[0])
                .unwrap_or_else(|| panic!("no flag row for {}: {flag_rows:?}", tokens[0]));
            assert_eq!(numbers(&row[1..].join(" ")), got, "{line}");
            seen.2 += 1;
            continue;
        }
        if tokens.len() < 3 || tokens[1] != "rust" {
            continue;
        }
        if line.contains(" plates < ") {
            // Set, pipeline, then the numbers as printed but the 90 px threshold.
            let mut want = numbers(line);
            want.remove(1);
            let row = size_rows
                .iter()
                .find(|r| r[0] == tokens[0] && r[1] == "rust")
                .unwrap_or_else(|| panic!("no size row for {}: {size_rows:?}", tokens[0]));
            assert_eq!(numbers(&row[2..].join(" ")), want, "{line}");
            seen.1 += 1;
        } else {
            let row = score_rows
                .iter()
                .find(|r| r[0] == tokens[0] && r[1] == "rust")
                .unwrap_or_else(|| panic!("no score row for {}: {score_rows:?}", tokens[0]));
            assert_eq!(&row[..tokens.len()], tokens.as_slice(), "{line}");
            seen.0 += 1;
        }
    }
    let sets = scores.as_object().unwrap().len();
    assert_eq!(
        seen,
        (sets, sets, sets),
        "a score row, a size row and a flag row per set: {text}"
    );

    let all = &scores["all"];
    let missed = all["images"].as_u64().unwrap() - all["exact"].as_u64().unwrap();
    assert!(
        dom.contains(&format!("<span id=\"misses-count\">{missed}</span>")),
        "{missed} misses"
    );
    // The table of misses is left out when there is none.
    let listed = if dom.contains("id=\"misses\"") {
        table_rows(&dom, "misses").len()
    } else {
        0
    };
    assert_eq!(listed as u64, missed, "one row per miss");
    let not_found = all["images"].as_u64().unwrap() - all["detected"].as_u64().unwrap();
    assert_eq!(
        dom.matches("not found</span>").count() as u64
            + dom.matches("image not processed</span>").count() as u64,
        not_found
    );
    assert_eq!(
        dom.matches("<img src=\"data:image/jpeg;base64,").count() as u64,
        missed,
        "every miss shows its plate crop"
    );
    let small = &all["small"];
    let large = &all["large"];
    assert_eq!(
        small["plates"].as_u64().unwrap() + large["plates"].as_u64().unwrap(),
        all["images"].as_u64().unwrap()
    );
    scores
}

/// Road-like 1280x720 images with one Kazakhstan plate each, at the label widths given,
/// labelled in the openalpr format under `dir/gen`.
fn generated_set(dir: &Path, widths: &[u32]) {
    let texts = [
        "123ABC01", "777KZA02", "905TEH13", "318MKP19", "246XAE07", "430PCK04",
    ];
    let out = dir.join("gen");
    std::fs::create_dir_all(&out).unwrap();
    let mut labels = String::new();
    for (i, (&width, text)) in widths.iter().zip(texts.iter().cycle()).enumerate() {
        let (plate, [px, py, pw, ph]) = anpr_scene::one_row_plate(text, width).unwrap();
        let mut img = image::RgbImage::from_fn(1280, 720, |_, row| {
            let grey = 70 + (row * 40 / 720) as u8;
            image::Rgb([grey, grey, grey + 4])
        });
        let (ox, oy) = (300 + i as u32 * 90, 300 + i as u32 * 40);
        image::imageops::overlay(&mut img, &plate, i64::from(ox), i64::from(oy));
        let name = format!("gen_{i:02}.jpg");
        img.save(out.join(&name)).unwrap();
        writeln!(
            labels,
            "{name}\t{}\t{}\t{pw}\t{ph}\t{text}",
            ox + px,
            oy + py
        )
        .unwrap();
    }
    std::fs::write(out.join("labels.txt"), labels).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eval_page_shows_the_counts_eval_prints_with_small_plates_apart() {
    let dir = tempfile::tempdir().unwrap();
    generated_set(dir.path(), &[60, 80, 140, 200, 260]);
    let scores = eval_page_shows_what_eval_prints(dir.path()).await;
    assert_eq!(
        scores["gen"]["small"]["plates"], 2,
        "60 and 80 px: {scores}"
    );
    assert_eq!(scores["gen"]["large"]["plates"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eval_page_of_real_photos_shows_the_counts_eval_prints() {
    let photos = util::repo().join("../shared/data/openalpr/us");
    if !photos.is_dir() {
        eprintln!("skipped: {} is not there", photos.display());
        return;
    }
    // Three plates narrower than 90 px (two of the narrowest, 55 px) and one wider (99 px),
    // labelled where the photos lie.
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("us");
    std::fs::create_dir_all(&set).unwrap();
    let mut labels = String::new();
    for name in [
        "car22",
        "wts-lg-000088",
        "0b86cecf-67d1-4fc0-87c9-b36b0ee228bb",
        "37170dd1-2802-4e38-b982-c5d07c64ff67",
    ] {
        let Ok(line) = std::fs::read_to_string(photos.join(format!("{name}.txt"))) else {
            eprintln!("skipped: {name}.txt is not in {}", photos.display());
            return;
        };
        let (image, rest) = line.trim().split_once(char::is_whitespace).unwrap();
        writeln!(labels, "{}\t{}", photos.join(image).display(), rest.trim()).unwrap();
    }
    std::fs::write(set.join("labels.txt"), labels).unwrap();
    let scores = eval_page_shows_what_eval_prints(dir.path()).await;
    assert_eq!(scores["us"]["small"]["plates"], 3, "{scores}");
    assert_eq!(scores["us"]["large"]["plates"], 1, "{scores}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_page_shows_the_figures_bench_prints_and_its_charts() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("bench.html");
    let text = bench_clip(
        dir.path(),
        &[
            "--frames".as_ref(),
            "6".as_ref(),
            "--html".as_ref(),
            html.as_os_str(),
        ],
    );
    let dom = util::chromium_dom(format!("file://{}", html.display())).await;
    let summary = &dom[dom.find("id=\"summary\"").unwrap()..];
    for line in text.lines().take(3) {
        assert!(
            summary.contains(&format!("<p>{}</p>", line.trim())),
            "{line} in {summary}"
        );
    }
    let stages = table_rows(&dom, "stages");
    let printed: Vec<&str> = text
        .lines()
        .skip(4)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(stages.len(), printed.len(), "{text}");
    for (row, line) in stages.iter().zip(&printed) {
        assert!(line.trim().starts_with(row[0].as_str()), "{line}");
        assert_eq!(numbers(&row[1..].join(" ")), numbers(line), "{line}");
    }
    assert!(text.contains("6 frames"), "{text}");
    assert!(
        dom.matches("class=\"histogram\"><svg").count() >= 3,
        "a histogram per stage"
    );
    assert!(
        dom.contains("<figure id=\"fps\"><svg"),
        "frames per second over the run"
    );
}

/// `bench --parallel-frames 2`: two recognizers take the frames in turn; every frame asked for
/// is counted once, and the report says how they ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_with_two_frames_at_a_time_counts_every_frame_once() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let text = bench_clip(
        dir.path(),
        &[
            "--frames".as_ref(),
            "7".as_ref(),
            "--parallel-frames".as_ref(),
            "2".as_ref(),
            "--json".as_ref(),
            json.as_os_str(),
        ],
    );
    assert!(text.contains("7 frames"), "{text}");
    assert!(text.contains("2 frames at a time"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["frames"], 7, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["parallel_frames"], 2, "{report}");
}

/// `anpr bench` with `args` on a generated one-vehicle clip written into `dir`, with the test
/// config; what it printed.
fn bench_clip(dir: &Path, args: &[&std::ffi::OsStr]) -> String {
    let clip = dir.join("clip.mp4");
    write_clip_with(&manifest_with(1), &clip).unwrap();
    let config = config(dir);
    let mut all = vec!["bench".as_ref(), "--config".as_ref(), config.as_os_str()];
    all.extend_from_slice(args);
    all.push(clip.as_os_str());
    anpr(&all)
}

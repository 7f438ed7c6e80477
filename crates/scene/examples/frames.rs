//! Saves a few frames of the demo clip as PNG files: `cargo run -p anpr-scene --example frames -- DIR`.
fn main() -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "var/frames".into()),
    );
    std::fs::create_dir_all(&dir)?;
    for i in [10u64, 40, 60, 100, 130, 160, 190, 220, 250] {
        anpr_scene::clip::save_frame_png(i, &dir.join(format!("f{i:04}.png")))?;
    }
    Ok(())
}

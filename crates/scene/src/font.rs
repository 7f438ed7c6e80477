//! The font plates are drawn with, found on this machine.

use ab_glyph::FontVec;
use anyhow::{Result, bail};

/// Fonts tried in order (Debian's fonts-dejavu-core, installed by deploy/setup.sh).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
];

/// The first of [`FONTS`] that is installed; an error names them and the package to install.
pub(crate) fn load_font() -> Result<FontVec> {
    for f in FONTS {
        if let Ok(bytes) = std::fs::read(f) {
            return FontVec::try_from_vec(bytes).map_err(|e| anyhow::anyhow!("font {f}: {e}"));
        }
    }
    bail!(
        "no DejaVu Sans Bold font found ({}); run deploy/setup.sh (package fonts-dejavu-core)",
        FONTS.join(", ")
    )
}

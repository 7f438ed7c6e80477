//! Small evidence images: two JPEGs made once, and per event a copy carrying a JPEG comment
//! (a COM segment right after the start-of-image marker) that names the event and the image,
//! so every image's sha256 differs while the picture stays a valid JPEG of a few kilobytes.

use std::sync::OnceLock;

/// The two pictures of a violation: `overview` (320×180) and `plate` (160×40).
fn bases() -> &'static [(String, Vec<u8>); 2] {
    static BASES: OnceLock<[(String, Vec<u8>); 2]> = OnceLock::new();
    BASES.get_or_init(|| {
        [
            ("overview".to_string(), picture(320, 180, 60)),
            ("plate".to_string(), picture(160, 40, 20)),
        ]
    })
}

/// A JPEG of a `w`×`h` pattern (large blocks over a gradient: a few kilobytes at quality 70).
fn picture(w: u32, h: u32, stripe: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let v = if (x / stripe + y / stripe).is_multiple_of(2) {
            200
        } else {
            40
        };
        image::Rgb([v, ((x * 255) / w) as u8, ((y * 255) / h) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 70)
        .encode_image(&img)
        .expect("encoding a JPEG into memory does not fail");
    out
}

/// The two images of a violation `tag` names (its event id), each `(kind, jpeg)`.
pub(crate) fn violation_images(tag: &str) -> Vec<(String, Vec<u8>)> {
    bases()
        .iter()
        .map(|(kind, jpeg)| (kind.clone(), with_comment(jpeg, &format!("{tag}/{kind}"))))
        .collect()
}

/// `jpeg` with a COM segment holding `text` right after its SOI marker.
fn with_comment(jpeg: &[u8], text: &str) -> Vec<u8> {
    let len = (text.len() + 2) as u16;
    let mut out = Vec::with_capacity(jpeg.len() + text.len() + 4);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[cfg(test)]
mod tests {
    use super::violation_images;

    #[test]
    fn two_events_get_valid_jpegs_of_a_few_kilobytes_with_different_hashes() {
        let a = violation_images("a");
        let b = violation_images("b");
        assert_eq!(a.len(), 2);
        for ((kind, x), (_, y)) in a.iter().zip(&b) {
            assert_ne!(anpr_store::sha256_hex(x), anpr_store::sha256_hex(y));
            assert!(
                (500..20_000).contains(&x.len()),
                "{kind}: {} bytes",
                x.len()
            );
            let img = image::load_from_memory(x).unwrap();
            assert!(img.width() > 0);
        }
    }
}

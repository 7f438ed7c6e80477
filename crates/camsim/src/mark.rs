//! A frame's serial number drawn into its top-left corner as black and white blocks, so that a
//! test can tell which served frame a decoded image (or a JPEG of it) is.
//!
//! Layout: 32 blocks of [`BLOCK`] x [`BLOCK`] pixels in one row from the top-left corner, most
//! significant bit first: 24 bits of serial number, then 8 check bits. White is 1, black 0. The
//! blocks survive H.264 and JPEG compression: each is read from its centre's mean brightness.

/// Side of one block, pixels.
pub const BLOCK: usize = 16;
/// Blocks in the mark.
pub const BITS: usize = 32;
/// Serial numbers are taken modulo this (24 bits: 7.7 days at 25 frames per second).
pub const SERIAL_MODULO: u32 = 1 << 24;

fn check(serial: u32) -> u32 {
    ((serial ^ (serial >> 8) ^ (serial >> 16)) & 0xff) ^ 0x5a
}

/// Whether a frame of this size can carry a mark.
#[must_use]
pub fn fits(width: u32, height: u32) -> bool {
    width as usize >= BLOCK * BITS && height as usize >= BLOCK
}

/// Draws `serial` (modulo [`SERIAL_MODULO`]) into a packed RGB frame; a frame too small for
/// the mark (see [`fits`]) or a buffer shorter than `width * height * 3` is left as it is.
pub fn draw(rgb: &mut [u8], width: u32, height: u32, serial: u32) {
    let (w, h) = (width as usize, height as usize);
    if !fits(width, height) || rgb.len() < w * h * 3 {
        return;
    }
    let serial = serial % SERIAL_MODULO;
    let word = (serial << 8) | check(serial);
    for bit in 0..BITS {
        let on = (word >> (BITS - 1 - bit)) & 1 == 1;
        let value = if on { 255 } else { 0 };
        for y in 0..BLOCK {
            let row = y * w * 3;
            let start = row + bit * BLOCK * 3;
            rgb[start..start + BLOCK * 3].fill(value);
        }
    }
}

/// Reads the serial number drawn by [`draw`]; `None` when the frame carries no valid mark.
#[must_use]
pub fn read(rgb: &[u8], width: u32, height: u32) -> Option<u32> {
    let (w, h) = (width as usize, height as usize);
    if !fits(width, height) || rgb.len() < w * h * 3 {
        return None;
    }
    let mut word = 0u32;
    for bit in 0..BITS {
        // The mean of the inner half of the block, away from edges that compression smears.
        let mut sum = 0u32;
        let mut n = 0u32;
        for y in BLOCK / 4..BLOCK * 3 / 4 {
            for x in BLOCK / 4..BLOCK * 3 / 4 {
                let p = (y * w + bit * BLOCK + x) * 3;
                sum += u32::from(rgb[p]) + u32::from(rgb[p + 1]) + u32::from(rgb[p + 2]);
                n += 3;
            }
        }
        word = (word << 1) | u32::from(sum / n >= 128);
    }
    let serial = word >> 8;
    (word & 0xff == check(serial)).then_some(serial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_reads_back_and_a_frame_without_one_reads_as_none() {
        let (w, h) = (640u32, 48u32);
        let mut rgb = vec![90u8; (w * h * 3) as usize];
        assert_eq!(read(&rgb, w, h), None);
        for serial in [0, 1, 4242, SERIAL_MODULO - 1] {
            draw(&mut rgb, w, h, serial);
            assert_eq!(read(&rgb, w, h), Some(serial));
        }
    }

    #[test]
    fn a_mark_survives_noise_of_compression() {
        let (w, h) = (600u32, 20u32);
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        draw(&mut rgb, w, h, 123_456);
        for (i, p) in rgb.iter_mut().enumerate() {
            let noise = (i * 7919 % 61) as i32 - 30;
            *p = (i32::from(*p) + noise).clamp(0, 255) as u8;
        }
        assert_eq!(read(&rgb, w, h), Some(123_456));
    }

    #[test]
    fn a_frame_too_small_is_left_alone() {
        let (w, h) = (100u32, 100u32);
        let mut rgb = vec![7u8; (w * h * 3) as usize];
        draw(&mut rgb, w, h, 5);
        assert!(rgb.iter().all(|p| *p == 7));
    }
}

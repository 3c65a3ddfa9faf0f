//! `--data shapes[:N]`: a seeded, procedural image set (circles, squares and triangles of random size, position,
//! rotation and colour on a random background, with pixel noise). Licence-free, any size, instant, and the same
//! images for the same seed on every machine (a `StdRng` stream, no floating-point library calls that differ
//! between platforms beyond `sin`/`cos` of the rotation).
//!
//! Each image is drawn at the requested side with 4×4 supersampling, so edges are anti-aliased at any size.
use image::{Rgb, RgbImage};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// The classes, in label order.
pub const CLASSES: [&str; 3] = ["circle", "square", "triangle"];
/// Images per class when `shapes` has no `:N`.
pub const DEFAULT_PER_CLASS: usize = 20;
/// Most images per class.
pub const MAX_PER_CLASS: usize = 100_000;
/// Standard deviation of the pixel noise, in 0..255 units.
const NOISE: f32 = 8.0;

/// One generated image.
pub struct Shape {
    pub label: usize,
    pub name: String,
    pub image: RgbImage,
}

/// `per_class` images of each class at `size`×`size`, interleaved (circle, square, triangle, circle, …) so that any
/// prefix is balanced. `split` separates independent streams from one seed (0: training, 1: held-out).
pub fn generate(per_class: usize, size: usize, seed: u64, split: u64) -> Vec<Shape> {
    let mut rng = stream(seed, split);
    let mut out = Vec::with_capacity(per_class * CLASSES.len());
    let mut planes = vec![0u8; 3 * size * size];
    for i in 0..per_class {
        for label in 0..CLASSES.len() {
            draw_planes(label, size, &mut rng, &mut planes);
            let plane = size * size;
            let image = RgbImage::from_fn(size as u32, size as u32, |x, y| {
                let k = y as usize * size + x as usize;
                Rgb([planes[k], planes[plane + k], planes[2 * plane + k]])
            });
            out.push(Shape {
                label,
                name: name(i * CLASSES.len() + label),
                image,
            });
        }
    }
    out
}

/// The generator whose draws make the images of `seed`'s split `split`, one after the other (image `k` of a set is
/// class `k % 3`, drawn after images `0..k`): [`draw_planes`] draws the next image, [`skip`] passes over it.
pub fn stream(seed: u64, split: u64) -> StdRng {
    StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (split + 1).wrapping_mul(0x5bd1_e995))
}

/// The file name of image `k` of a set (`circle_00000.png`).
pub fn name(k: usize) -> String {
    format!("{}_{:05}.png", CLASSES[k % CLASSES.len()], k / CLASSES.len())
}

/// What an image is, drawn from the generator before its pixels.
struct Params {
    bg: [f32; 3],
    fg: [f32; 3],
    r: f32,
    cx: f32,
    cy: f32,
    angle: f32,
}

fn params(size: usize, rng: &mut StdRng) -> Params {
    let s = size as f32;
    // A dark background and a bright shape, each of a random colour: the shape's outline is what tells the
    // classes apart (a network can learn it from a few dozen images), the colours are nuisance.
    let bg = [
        0.35 * rng.random::<f32>(),
        0.35 * rng.random::<f32>(),
        0.35 * rng.random::<f32>(),
    ];
    let fg = [
        0.6 + 0.4 * rng.random::<f32>(),
        0.6 + 0.4 * rng.random::<f32>(),
        0.6 + 0.4 * rng.random::<f32>(),
    ];
    // Radius of the circumscribed circle: 15–35 % of the side; the centre keeps the whole shape inside.
    let r = s * rng.random_range(0.15..0.35);
    let cx = rng.random_range(r..(s - r).max(r + 1e-3));
    let cy = rng.random_range(r..(s - r).max(r + 1e-3));
    let angle = rng.random_range(0.0..std::f32::consts::TAU);
    Params {
        bg,
        fg,
        r,
        cx,
        cy,
        angle,
    }
}

fn noise() -> Normal<f32> {
    Normal::new(0.0f32, NOISE).expect("a valid normal")
}

/// Passes over the next image of the stream without drawing it: exactly the generator's draws of
/// [`draw_planes`] (the parameters, then three noise samples a pixel), for a fraction of the time.
pub fn skip(size: usize, rng: &mut StdRng) {
    params(size, rng);
    let noise = noise();
    for _ in 0..3 * size * size {
        std::hint::black_box(noise.sample(rng));
    }
}

/// Draws the next image of the stream, of class `label`, into `out` as three `size×size` planes (R, G, B).
pub fn draw_planes(label: usize, size: usize, rng: &mut StdRng, out: &mut [u8]) {
    let Params {
        bg,
        fg,
        r,
        cx,
        cy,
        angle,
    } = params(size, rng);
    let (sin, cos) = angle.sin_cos();
    // Triangle corners (equilateral, circumradius r) for the edge tests.
    let tri: Vec<(f32, f32)> = (0..3)
        .map(|k| {
            let a = angle + k as f32 * std::f32::consts::TAU / 3.0;
            (cx + r * a.cos(), cy + r * a.sin())
        })
        .collect();
    let inside = |x: f32, y: f32| -> bool {
        let (dx, dy) = (x - cx, y - cy);
        match label {
            0 => dx * dx + dy * dy <= r * r,
            1 => {
                // A square of half-side r/√2 (corners on the circle), rotated.
                let h = r * std::f32::consts::FRAC_1_SQRT_2;
                let u = dx * cos + dy * sin;
                let v = -dx * sin + dy * cos;
                u.abs() <= h && v.abs() <= h
            }
            _ => {
                let edge = |(x0, y0): (f32, f32), (x1, y1): (f32, f32)| (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0);
                let e = [edge(tri[0], tri[1]), edge(tri[1], tri[2]), edge(tri[2], tri[0])];
                e.iter().all(|&v| v >= 0.0) || e.iter().all(|&v| v <= 0.0)
            }
        }
    };
    let noise = noise();
    let plane = size * size;
    const SUB: usize = 4;
    for py in 0..size {
        for px in 0..size {
            let mut hits = 0;
            for sy in 0..SUB {
                for sx in 0..SUB {
                    let x = px as f32 + (sx as f32 + 0.5) / SUB as f32;
                    let y = py as f32 + (sy as f32 + 0.5) / SUB as f32;
                    hits += inside(x, y) as usize;
                }
            }
            let cover = hits as f32 / (SUB * SUB) as f32;
            for c in 0..3 {
                let v = 255.0 * (bg[c] * (1.0 - cover) + fg[c] * cover) + noise.sample(rng);
                out[c * plane + py * size + px] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_images_and_balanced() {
        let a = generate(4, 32, 7, 0);
        let b = generate(4, 32, 7, 0);
        assert_eq!(a.len(), 12);
        assert!(a.iter().zip(&b).all(|(x, y)| x.image == y.image && x.label == y.label));
        for l in 0..3 {
            assert_eq!(a.iter().filter(|s| s.label == l).count(), 4);
        }
        // Another split or seed gives other images.
        let c = generate(4, 32, 7, 1);
        assert!(a.iter().zip(&c).any(|(x, y)| x.image != y.image));
    }

    #[test]
    fn skipping_an_image_draws_what_drawing_it_draws() {
        for size in [1, 7, 32] {
            let (mut a, mut b) = (stream(5, 0), stream(5, 0));
            let mut out = vec![0u8; 3 * size * size];
            for k in 0..9 {
                draw_planes(k % 3, size, &mut a, &mut out);
                skip(size, &mut b);
                assert!(a == b, "size {size}, image {k}: the generators part");
            }
        }
    }

    #[test]
    fn the_shape_covers_a_plausible_area() {
        // Fraction of pixels that differ clearly from the corner (background) colour: a circle of radius
        // 0.15–0.35 of the side covers 7–38 % of the image; squares and triangles somewhat less.
        for s in generate(10, 64, 3, 0) {
            let bg = *s.image.get_pixel(0, 0);
            let far = s
                .image
                .pixels()
                .filter(|p| (0..3).map(|c| (p[c] as i32 - bg[c] as i32).abs()).sum::<i32>() > 60)
                .count() as f32
                / (64.0 * 64.0);
            assert!((0.02..0.45).contains(&far), "{}: {far}", s.name);
        }
    }
}

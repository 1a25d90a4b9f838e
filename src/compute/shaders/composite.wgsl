// SPDX-License-Identifier: MIT
//
// Paste / feathered blend of one plane's footprint rows, bit-exact with the CPU path
// (composite::blend_row): integer weights 0..=255, the weight of a sample is the minimum of its
// column's and its row's, and v = s*a + d*(255-a) + 128; out = (v + (v >> 8)) >> 8.
//
// Storage buffers hold bytes packed in u32 words. `dst` holds, per footprint row, the words
// of the bg row from `first_word` on (`words` of them); one invocation owns one word, so no
// two invocations write the same word.

struct Params {
    // First footprint byte in a bg row, and the footprint's width in bytes.
    col0_bytes: u32,
    width_bytes: u32,
    rows: u32,
    bytes_per_pixel: u32,
    // Words per row of the packed dst and src buffers.
    words: u32,
    src_words: u32,
    // Index (in a bg row) of the first word held.
    first_word: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read> col_alpha: array<u32>;
@group(0) @binding(4) var<storage, read> row_alpha: array<u32>;

fn src_byte(r: u32, b: u32) -> u32 {
    let w = src[r * p.src_words + b / 4u];
    return (w >> ((b % 4u) * 8u)) & 0xffu;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let wi = id.x;
    let r = id.y;
    if (wi >= p.words || r >= p.rows) {
        return;
    }
    let index = r * p.words + wi;
    var w = dst[index];
    let ra = row_alpha[r];
    for (var k = 0u; k < 4u; k = k + 1u) {
        let byte = (p.first_word + wi) * 4u + k;
        if (byte < p.col0_bytes || byte >= p.col0_bytes + p.width_bytes) {
            continue;
        }
        let sb = byte - p.col0_bytes;
        let a = min(col_alpha[sb / p.bytes_per_pixel], ra);
        let s = src_byte(r, sb);
        var v = s;
        if (a != 255u) {
            let d = (w >> (k * 8u)) & 0xffu;
            let t = s * a + d * (255u - a) + 128u;
            v = (t + (t >> 8u)) >> 8u;
        }
        w = (w & ~(0xffu << (k * 8u))) | (v << (k * 8u));
    }
    dst[index] = w;
}

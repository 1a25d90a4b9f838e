// SPDX-License-Identifier: MIT
//
// Dot products of quantised features (i16 values, two per u32 word, low half first) between
// fg row i and the bg rows lo[i] .. lo[i] + width: the cost matrix's band as a matrix product.
// Integer arithmetic wraps on overflow in WGSL, as the CPU path's wrapping sum does, and is
// independent of summation order: both give the very same numbers.

struct Params {
    // u32 words per feature (values / 2, rounded up; odd lengths padded with a zero value).
    words: u32,
    rows: u32,
    width: u32,
    // bg rows.
    m: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> fg: array<u32>;
@group(0) @binding(2) var<storage, read> bg: array<u32>;
@group(0) @binding(3) var<storage, read> lo: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<i32>;

fn low(w: u32) -> i32 {
    return bitcast<i32>(w << 16u) >> 16u;
}

fn high(w: u32) -> i32 {
    return bitcast<i32>(w) >> 16u;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let k = id.x;
    let i = id.y;
    if (k >= p.width || i >= p.rows) {
        return;
    }
    let j = lo[i] + k;
    var s = 0i;
    if (j < p.m) {
        let a = i * p.words;
        let b = j * p.words;
        for (var w = 0u; w < p.words; w = w + 1u) {
            let x = fg[a + w];
            let y = bg[b + w];
            s = s + low(x) * low(y) + high(x) * high(y);
        }
    }
    out[i * p.width + k] = s;
}

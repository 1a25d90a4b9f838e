// SPDX-License-Identifier: MIT
//
// DTW accumulation over a band in fixed point (`align::temporal::Accumulation`), rows in
// order, one workgroup: the cells of a row are shared among its invocations, which meet at a
// barrier between rows. Costs are 64-bit unsigned integers, two u32 words (low, high), whose
// sums saturate; the first predecessor wins a tie: exactly the CPU path's arithmetic, so both
// give the same numbers.
//
// One dispatch takes a chunk of rows; `line` keeps the last row between dispatches.

struct Params {
    // Rows in this chunk.
    rows: u32,
    // Largest step.
    k: u32,
    // 1 when a jump is allowed, with its penalty.
    has_jump: u32,
    jump_lo: u32,
    jump_hi: u32,
    // The previous row (the chunk before's last): its first bg frame and length.
    prev_lo: u32,
    prev_len: u32,
    // Which half of `line` holds the previous row.
    flip: u32,
    // 1 for the chunk that starts at row 0.
    first: u32,
    // Cells per half of `line` (the widest row).
    half: u32,
}

const WG: u32 = 256u;
const NONE: u32 = 4294967295u;

@group(0) @binding(0) var<uniform> p: Params;
// lo of each row of the chunk, then the chunk-relative start of each row's cells (rows + 1).
@group(0) @binding(1) var<storage, read> band: array<u32>;
// Two words per cell, low first.
@group(0) @binding(2) var<storage, read> cells: array<u32>;
@group(0) @binding(3) var<storage, read> pen: array<u32>;
// Two rows (previous, current) of two words per cell, then the running minimum of the
// previous row: value (two words), bg frame. 7 * half words.
@group(0) @binding(4) var<storage, read_write> line: array<u32>;
@group(0) @binding(5) var<storage, read_write> back: array<u32>;

var<workgroup> sv: array<vec2<u32>, 256>;
var<workgroup> sc: array<u32, 256>;

// a + b, saturating at 2^64 - 1 (x: low word, y: high word).
fn add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    let carry = select(0u, 1u, lo < a.x);
    let hi = a.y + b.y;
    let hi2 = hi + carry;
    if (hi < a.y || hi2 < hi) {
        return vec2<u32>(NONE, NONE);
    }
    return vec2<u32>(lo, hi2);
}

fn less(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

fn row_value(at: u32) -> vec2<u32> {
    return vec2<u32>(line[2u * at], line[2u * at + 1u]);
}

// The running minimum (first one on ties) of the previous row (cells prev..) into the lead
// part of `line`.
fn lead(t: u32, prev: u32, prev_lo: u32, prev_len: u32) {
    var carry_v = vec2<u32>(NONE, NONE);
    var carry_c = 0u;
    for (var base = 0u; base < prev_len; base = base + WG) {
        let q = base + t;
        var v = vec2<u32>(NONE, NONE);
        if (q < prev_len) {
            v = row_value(prev + q);
        }
        var c = prev_lo + q;
        // The carry from the cells before comes first.
        if (t == 0u && !less(v, carry_v)) {
            v = carry_v;
            c = carry_c;
        }
        sv[t] = v;
        sc[t] = c;
        workgroupBarrier();
        for (var off = 1u; off < WG; off = off * 2u) {
            var ev = vec2<u32>(NONE, NONE);
            var ec = 0u;
            if (t >= off) {
                ev = sv[t - off];
                ec = sc[t - off];
            }
            workgroupBarrier();
            // Earlier (t - off) against later (t): the later one only when strictly lower.
            if (t >= off && !less(v, ev)) {
                v = ev;
                c = ec;
            }
            sv[t] = v;
            sc[t] = c;
            workgroupBarrier();
        }
        if (q < prev_len) {
            let at = 4u * p.half + 3u * q;
            line[at] = v.x;
            line[at + 1u] = v.y;
            line[at + 2u] = c;
        }
        carry_v = sv[WG - 1u];
        carry_c = sc[WG - 1u];
        workgroupBarrier();
    }
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_index) t: u32) {
    var prev_lo = p.prev_lo;
    var prev_len = p.prev_len;
    var flip = p.flip;
    let k = max(p.k, 1u);
    let jump = vec2<u32>(p.jump_lo, p.jump_hi);
    for (var r = 0u; r < p.rows; r = r + 1u) {
        let lo = band[r];
        let s0 = band[p.rows + r];
        let len = band[p.rows + r + 1u] - s0;
        // Cells (not words) where the previous row and this one are.
        let prev = flip * p.half;
        let cur = (1u - flip) * p.half;
        let first = r == 0u && p.first == 1u;
        if (!first && p.has_jump == 1u) {
            lead(t, prev, prev_lo, prev_len);
            storageBarrier();
        }
        let prev_hi = prev_lo + prev_len;
        for (var q = t; q < len; q = q + WG) {
            let j = lo + q;
            let c = vec2<u32>(cells[2u * (s0 + q)], cells[2u * (s0 + q) + 1u]);
            // A cell without predecessors: its own cost plus 2^62.
            var best = vec2<u32>(0u, 1073741824u);
            var arg = j;
            var found = false;
            if (!first && j >= prev_lo) {
                var s_min = 0u;
                if (j + 1u > prev_hi) {
                    s_min = j + 1u - prev_hi;
                }
                let s_max = min(k, j - prev_lo);
                for (var s = s_min; s <= s_max; s = s + 1u) {
                    let v = add(row_value(prev + j - s - prev_lo), vec2<u32>(pen[2u * s], pen[2u * s + 1u]));
                    if (!found || less(v, best)) {
                        best = v;
                        arg = j - s;
                        found = true;
                    }
                }
            }
            if (!first && p.has_jump == 1u && prev_len > 0u && j > k + prev_lo) {
                let at = 4u * p.half + 3u * min(j - k - 1u - prev_lo, prev_len - 1u);
                let v = add(vec2<u32>(line[at], line[at + 1u]), jump);
                if (!found || less(v, best)) {
                    best = v;
                    arg = line[at + 2u];
                }
            }
            var value = c;
            if (!first) {
                value = add(best, c);
            }
            line[2u * (cur + q)] = value.x;
            line[2u * (cur + q) + 1u] = value.y;
            back[s0 + q] = arg;
        }
        storageBarrier();
        workgroupBarrier();
        prev_lo = lo;
        prev_len = len;
        flip = 1u - flip;
    }
}

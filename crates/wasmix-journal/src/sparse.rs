//! An increment's xor deltas ([`crate::Encoding::Xor`]): the XOR of a region with the full
//! snapshot's bytes there, and its encoding as an lz4 block.
//!
//! A page changed in a few bytes XORs to a few non-zero words among zeros. Its lz4 block is
//! written here as runs, not by a general compressor: each run of zero words becomes one
//! match of offset 1 (repeating the zero byte before it), the rest literals. The reader
//! decodes it with lz4 like any other block. Measured on an increment of 651 such pages,
//! lz4_flex's compressor took 0.2–0.8 ms (it clears a 4 KiB hash table and hashes every
//! position of each page); this takes what a pass over the words does.
//!
//! ```text
//!   delta:  00 00 00 00 … 00 | 5a 1c 00 07 9e 00 00 41 | 00 00 … 00 | 00 00 00 00 00
//!   block:  [lit 00][match off 1, len n] [lit 00 5a 1c … 41 00][match off 1, len m] [lit ×5]
//! ```
//!
//! The block keeps lz4's end rules, so any lz4 decoder takes it: the last five bytes are
//! literals, and no match starts within the last twelve.

/// lz4's shortest match.
const MIN_MATCH: usize = 4;
/// No match starts within this many bytes of the block's end (lz4's MFLIMIT).
const MATCH_LIMIT: usize = 12;
/// The block's last bytes are always literals (lz4's LASTLITERALS).
const LAST_LITERALS: usize = 5;
/// Zero runs shorter than this stay literals: a sequence costs three bytes and more.
const MIN_RUN: usize = 16;

/// `acc ^= bytes`, eight bytes at a time (`acc` is as long as `bytes`); notes in `nonzero`
/// (emptied first) the index of every eight-byte word it leaves non-zero, for [`encode`].
pub(crate) fn xor_into(acc: &mut [u8], bytes: &[u8], nonzero: &mut Vec<u32>) {
    nonzero.clear();
    let mut a = acc.chunks_exact_mut(8);
    let mut b = bytes.chunks_exact(8);
    for (k, (x, y)) in (&mut a).zip(&mut b).enumerate() {
        let v = u64::from_ne_bytes(x.try_into().unwrap_or_default())
            ^ u64::from_ne_bytes(y.try_into().unwrap_or_default());
        if v != 0 {
            nonzero.push(k as u32);
        }
        x.copy_from_slice(&v.to_ne_bytes());
    }
    for (x, y) in a.into_remainder().iter_mut().zip(b.remainder()) {
        *x ^= y;
    }
}

/// `delta` as an lz4 block (appended to `out`): its runs of zero words as matches, the rest
/// as literals. `nonzero` lists its non-zero eight-byte words, ascending (as [`xor_into`]
/// notes them), so the work follows those, not the length. `lz4_flex::block::decompress(out,
/// delta.len())` gives `delta` back.
pub(crate) fn encode(delta: &[u8], nonzero: &[u32], out: &mut Vec<u8>) {
    let n = delta.len();
    let words = n / 8;
    // Literals from `lit` on are not written yet.
    let mut lit = 0;
    let mut from = 0;
    for w in nonzero.iter().map(|w| *w as usize).chain([words]) {
        // Words from..w are zero.
        let (i, j) = (from * 8, w * 8);
        from = w + 1;
        // The run's first zero is a literal; the match repeats it (offset 1) up to the
        // run's end, or up to where the block's last literals start.
        let start = i + 1;
        let end = j.min(n.saturating_sub(LAST_LITERALS));
        if j >= i + MIN_RUN && start + MATCH_LIMIT <= n && end >= start + MIN_MATCH {
            sequence(out, &delta[lit..start], Some(end - start));
            lit = end;
        }
    }
    sequence(out, &delta[lit..], None);
}

/// One lz4 sequence: `literals`, then a match of offset 1 and `matched` bytes (none for the
/// block's last sequence).
fn sequence(out: &mut Vec<u8>, literals: &[u8], matched: Option<usize>) {
    let extra = matched.map_or(0, |m| m - MIN_MATCH);
    out.push(((literals.len().min(15) as u8) << 4) | extra.min(15) as u8);
    length(out, literals.len());
    out.extend_from_slice(literals);
    if matched.is_some() {
        out.extend_from_slice(&1u16.to_le_bytes());
        length(out, extra);
    }
}

/// The bytes that continue a length of 15 or more in a sequence's token.
fn length(out: &mut Vec<u8>, len: usize) {
    if len < 15 {
        return;
    }
    let mut rest = len - 15;
    while rest >= 255 {
        out.push(255);
        rest -= 255;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(delta: &[u8]) -> Vec<u8> {
        // As the writer has it: the xor of the region with the base.
        let base = vec![0x3cu8; delta.len()];
        let mut acc = base.clone();
        let region: Vec<u8> = delta.iter().zip(&base).map(|(d, b)| d ^ b).collect();
        let mut nonzero = Vec::new();
        xor_into(&mut acc, &region, &mut nonzero);
        assert_eq!(acc, delta);
        let mut out = Vec::new();
        encode(delta, &nonzero, &mut out);
        let back = lz4_flex::block::decompress(&out, delta.len()).expect("decodes");
        assert_eq!(back, delta);
        out
    }

    /// lz4's end rules, read from the encoded block: the last sequence has no match, the
    /// last five bytes are literals, no match starts within the last twelve.
    fn keeps_end_rules(out: &[u8], n: usize) {
        // A length from a token's nibble and the bytes that continue it; `at` moves past them.
        let length = |nibble: u8, at: &mut usize| {
            let mut len = usize::from(nibble);
            if len == 15 {
                while out[*at] == 255 {
                    len += 255;
                    *at += 1;
                }
                len += usize::from(out[*at]);
                *at += 1;
            }
            len
        };
        let (mut at, mut pos) = (0, 0);
        loop {
            let token = out[at];
            at += 1;
            let lits = length(token >> 4, &mut at);
            at += lits;
            pos += lits;
            if at == out.len() {
                assert_eq!(pos, n);
                assert!(lits >= LAST_LITERALS.min(n), "{lits} last literals");
                return;
            }
            assert!(pos + MATCH_LIMIT <= n, "a match starts at {pos} of {n}");
            at += 2;
            pos += length(token & 15, &mut at) + MIN_MATCH;
        }
    }

    #[test]
    fn a_page_changed_in_eight_bytes_encodes_to_tens_of_bytes() {
        let mut page = vec![0u8; 4096];
        page[1000..1008].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let out = roundtrip(&page);
        assert!(out.len() < 64, "{} bytes", out.len());
        keeps_end_rules(&out, page.len());
    }

    #[test]
    fn all_zero_and_no_zero_and_tiny_deltas_decode() {
        for n in [0, 1, 5, 7, 8, 12, 13, 16, 17, 31, 4096] {
            keeps_end_rules(&roundtrip(&vec![0u8; n]), n);
            keeps_end_rules(&roundtrip(&vec![0xa5u8; n]), n);
        }
    }

    proptest! {
        /// Whatever the delta — zero runs of any length at any place, words half zero,
        /// lengths not a multiple of eight — the block decodes to it and keeps the end
        /// rules.
        #[test]
        fn every_delta_decodes_to_itself(
            n in 0usize..9000,
            pokes in prop::collection::vec((0usize..9000, 1usize..300, any::<u8>()), 0..12),
        ) {
            let mut delta = vec![0u8; n];
            for (at, len, v) in pokes {
                for b in delta.iter_mut().skip(at).take(len) {
                    *b = v;
                }
            }
            let out = roundtrip(&delta);
            keeps_end_rules(&out, n);
        }
    }
}

//! Sharing a day's charge out among what used it (View details' cost by operation and by client):
//! in proportion to each one's additional credits that day, in whole minor units, by largest
//! remainder, so that the shares add up to the day's charge exactly.

/// `total` shared in proportion to `weights` (non-negative): each gets the floor of its exact
/// share, and the minor units left over go one each to the largest remainders (the earlier one on
/// a tie). With no weight at all, nothing is shared (every share 0).
pub fn share_out(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i128 = weights.iter().map(|w| i128::from((*w).max(0))).sum();
    if sum == 0 || total == 0 {
        return vec![0; weights.len()];
    }
    let total = i128::from(total);
    let mut shares: Vec<i128> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(i128, usize)> = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let exact = total * i128::from((*w).max(0));
        shares.push(exact.div_euclid(sum));
        remainders.push((exact.rem_euclid(sum), i));
    }
    let left = total - shares.iter().sum::<i128>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders
        .into_iter()
        .take(usize::try_from(left).unwrap_or(0))
    {
        shares[i] += 1;
    }
    shares
        .into_iter()
        .map(|s| i64::try_from(s).unwrap_or(i64::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_day_is_shared_in_proportion_and_adds_up() {
        assert_eq!(share_out(680, &[40_000, 40_000]), [340, 340]);
        assert_eq!(share_out(100, &[1, 1, 1]), [34, 33, 33]);
        assert_eq!(share_out(173, &[12_345, 0]), [173, 0]);
        assert_eq!(share_out(500, &[0, 0]), [0, 0]);
        assert_eq!(share_out(0, &[5, 5]), [0, 0]);
    }

    proptest! {
        #[test]
        fn shares_always_add_up_to_the_total(total in 0i64..10_000_000, weights in proptest::collection::vec(0i64..1_000_000, 1..12)) {
            let shares = share_out(total, &weights);
            if weights.iter().any(|w| *w > 0) {
                prop_assert_eq!(shares.iter().sum::<i64>(), total);
            }
            for (s, w) in shares.iter().zip(&weights) {
                prop_assert!(*w > 0 || *s == 0, "no weight, no share");
            }
        }
    }
}

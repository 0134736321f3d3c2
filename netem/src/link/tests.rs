//! Properties of the link clock: bytes never reordered, throughput never above the rate, delay
//! never below the propagation floor, loss only ever adds delay.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::profile::{GilbertElliott, Loss, RadioPromotion};

const MS: Duration = Duration::from_millis(1);

fn profile(down_kbps: f64, rtt_ms: u64, jitter_ms: u64, loss: Loss) -> Profile {
    let mut p = Profile::unshaped("t");
    p.down = Rate::Kbps(down_kbps);
    p.up = Rate::Kbps(down_kbps);
    p.one_way_delay = MS * rtt_ms as u32 / 2;
    p.jitter.amount = MS * jitter_ms as u32;
    p.loss = loss;
    p
}

fn bits(payload: usize, p: &Profile) -> f64 {
    ((payload + p.overhead_bytes as usize) * 8) as f64
}

#[test]
fn a_back_to_back_transfer_runs_exactly_at_the_rate() {
    // 1 MB at 1600 kbit/s: 1_000_000 B in 685 segments of 1460 B + 40 B overhead.
    let p = profile(1600.0, 300, 0, Loss::None);
    let mut link = Link::new(&p, Direction::Down, 1);
    let mut radio = RadioState::new(None);
    let mut left = 1_000_000usize;
    let mut last = None;
    while left > 0 {
        let n = left.min(link.mss());
        left -= n;
        last = Some(link.send(Duration::ZERO, n, left > 0, &mut radio).unwrap());
    }
    let last = last.unwrap();
    let wire_bits = (1_000_000 + 685 * 40) as f64 * 8.0;
    let expect = Duration::from_secs_f64(wire_bits / 1_600_000.0);
    assert!(last.tx_end.abs_diff(expect) < Duration::from_micros(1), "{:?} vs {expect:?}", last.tx_end);
    assert_eq!(last.deliver_at, last.tx_end + MS * 150);
}

#[test]
fn an_idle_link_re_anchors_and_a_late_sender_is_credited() {
    let p = profile(8.0, 0, 0, Loss::None); // 1 kB/s: a 960 B payload takes exactly 1 s
    let mut link = Link::new(&p, Direction::Up, 1);
    let mut radio = RadioState::new(None);
    let a = link.send(Duration::ZERO, 960, false, &mut radio).unwrap();
    assert_eq!(a.tx_end, Duration::from_secs(1));
    // The sender wakes 1 ms late (a timer tick): the link clock chains from its own deadline.
    let b = link.send(Duration::from_secs(1) + MS, 960, false, &mut radio).unwrap();
    assert_eq!(b.tx_start, Duration::from_secs(1));
    assert_eq!(b.tx_end, Duration::from_secs(2));
    // After a real pause the link starts afresh at `now`.
    let c = link.send(Duration::from_secs(5), 960, false, &mut radio).unwrap();
    assert_eq!((c.tx_start, c.tx_end), (Duration::from_secs(5), Duration::from_secs(6)));
}

#[test]
fn tail_loss_costs_an_rto_and_mid_stream_loss_an_rtt() {
    let p = profile(1000.0, 100, 0, Loss::Random { pct: 100.0 });
    let mut radio = RadioState::new(None);
    // Always lost: the retransmission limit breaks the link.
    assert_eq!(Link::new(&p, Direction::Down, 3).send(Duration::ZERO, 100, true, &mut radio), Err(LinkBroken));

    let mut p = p;
    p.loss =
        Loss::GilbertElliott(GilbertElliott { p_pct: 100.0, r_pct: 100.0, bad_loss_pct: 100.0, good_loss_pct: 0.0 });
    // good (kept) → bad (lost once, then good again) → ...: every other segment is lost once.
    let mut link = Link::new(&p, Direction::Down, 3);
    let first = link.send(Duration::ZERO, 100, true, &mut radio).unwrap();
    assert_eq!(first.retransmissions, 0);
    let lost = link.send(Duration::ZERO, 100, true, &mut radio).unwrap();
    assert_eq!(lost.retransmissions, 1);
    assert_eq!(lost.deliver_at, lost.tx_end + p.rtt() + p.one_way_delay, "fast retransmit: one RTT");
    let _ = link.send(Duration::ZERO, 100, false, &mut radio).unwrap();
    let tail = link.send(Duration::ZERO, 100, false, &mut radio).unwrap();
    assert_eq!(tail.retransmissions, 1);
    assert_eq!(tail.deliver_at, tail.tx_end + p.rto() + p.one_way_delay, "tail loss: the RTO");
    assert_eq!(p.rto(), Duration::from_millis(200), "Linux's minimum RTO");
}

#[test]
fn radio_promotion_is_paid_after_idle_only() {
    let p = profile(1000.0, 0, 0, Loss::None);
    let promo = RadioPromotion { promotion: Duration::from_secs(2), tail: Duration::from_secs(5) };
    let mut radio = RadioState::new(Some(promo));
    let mut up = Link::new(&p, Direction::Up, 1);
    let mut down = Link::new(&p, Direction::Down, 2);
    let first = up.send(Duration::ZERO, 100, false, &mut radio).unwrap();
    assert_eq!(first.tx_start, Duration::from_secs(2), "first bytes wait for the promotion");
    // The other direction, during the promotion, waits for the same radio.
    let reply = down.send(Duration::from_millis(500), 100, false, &mut radio).unwrap();
    assert_eq!(reply.tx_start, Duration::from_secs(2));
    // Within the tail timer: no new promotion.
    let soon = up.send(Duration::from_secs(6), 100, false, &mut radio).unwrap();
    assert_eq!(soon.tx_start, Duration::from_secs(6));
    // Idle past the tail: promoted again.
    let later = up.send(Duration::from_secs(20), 100, false, &mut radio).unwrap();
    assert_eq!(later.tx_start, Duration::from_secs(22));
    assert_eq!(radio.promotions(), 2);
}

#[test]
fn the_same_seed_replays_the_same_link() {
    let p = profile(400.0, 400, 50, Loss::Random { pct: 5.0 });
    let run = |seed| {
        let mut link = Link::new(&p, Direction::Down, seed);
        let mut radio = RadioState::new(None);
        (0..200).map(|i| link.send(MS * i, 1000, true, &mut radio).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn derived_seeds_differ_per_connection_and_direction() {
    let mut seen = std::collections::HashSet::new();
    for conn in 0..1000 {
        for tag in 0..2 {
            assert!(seen.insert(derive_seed(7, conn, tag)));
        }
    }
}

fn any_loss() -> impl Strategy<Value = Loss> {
    prop_oneof![
        Just(Loss::None),
        (0.0..30.0f64).prop_map(|pct| Loss::Random { pct }),
        (0.0..20.0f64, 5.0..100.0f64, 50.0..100.0f64).prop_map(|(p, r, h)| {
            Loss::GilbertElliott(GilbertElliott { p_pct: p, r_pct: r, bad_loss_pct: h, good_loss_pct: 0.0 })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For any profile and any sequence of writes (non-decreasing hand-over times):
    /// the link is used by one segment at a time, no window carries more than the rate allows,
    /// deliveries are in order, and nothing arrives sooner than the propagation floor.
    #[test]
    fn link_clock_invariants(
        kbps in 8.0..50_000.0f64,
        rtt_ms in 0u64..2_000,
        jitter_ms in 0u64..300,
        uniform in any::<bool>(),
        loss in any_loss(),
        seed in any::<u64>(),
        writes in prop::collection::vec((0u64..50_000, 1usize..1460, any::<bool>()), 1..80),
    ) {
        let mut p = profile(kbps, rtt_ms, jitter_ms, loss);
        if uniform { p.jitter.distribution = JitterDistribution::Uniform; }
        let mut link = Link::new(&p, Direction::Down, seed);
        let mut radio = RadioState::new(None);
        let mut now = Duration::ZERO;
        let mut segs = Vec::new();
        for (gap_us, len, more) in writes {
            now += Duration::from_micros(gap_us);
            let s = link.send(now, len, more, &mut radio);
            let Ok(s) = s else { break }; // a broken link ends the stream; nothing to check after it
            prop_assert!(s.tx_start + REANCHOR_SLACK >= now, "started before it was handed over (beyond the slack)");
            prop_assert!(s.tx_end >= s.tx_start);
            prop_assert!(s.deliver_at >= s.tx_end + p.min_one_way_delay(), "delivered below the propagation floor");
            if s.retransmissions > 0 {
                prop_assert!(s.deliver_at >= s.tx_end + p.min_one_way_delay() + p.rtt().min(p.rto()));
            }
            segs.push((s, len));
        }
        for w in segs.windows(2) {
            let (a, b) = (w[0].0, w[1].0);
            prop_assert!(b.tx_start >= a.tx_end, "segments overlap on the link");
            prop_assert!(b.deliver_at >= a.deliver_at, "bytes reordered");
        }
        // Throughput: any run of segments i..=j needs at least its bits / rate of link time.
        let rate = kbps * 1000.0;
        for i in 0..segs.len() {
            let mut total = 0.0;
            for j in i..segs.len() {
                total += bits(segs[j].1, &p);
                let span = (segs[j].0.tx_end - segs[i].0.tx_start).as_secs_f64();
                prop_assert!(span + 1e-9 >= total / rate, "{} bits in {span} s is above {rate} bit/s", total);
            }
        }
    }

    /// Jitter samples stay within the profile's truncation and have the configured median.
    #[test]
    fn one_way_delay_samples_are_bounded(one_way_ms in 0u64..1000, jitter_ms in 0u64..200, seed in any::<u64>(), uniform in any::<bool>()) {
        let jitter = Jitter {
            amount: MS * jitter_ms as u32,
            distribution: if uniform { JitterDistribution::Uniform } else { JitterDistribution::Normal },
        };
        let one_way = MS * one_way_ms as u32;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..200 {
            let d = sample_one_way(&jitter, one_way, &mut rng);
            prop_assert!(d >= one_way.saturating_sub(jitter.max_deviation()));
            prop_assert!(d <= one_way + jitter.max_deviation());
        }
    }
}

#[test]
fn jitter_keeps_the_configured_median() {
    let jitter = Jitter { amount: MS * 50, distribution: JitterDistribution::Normal };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut v: Vec<Duration> = (0..20_001).map(|_| sample_one_way(&jitter, MS * 150, &mut rng)).collect();
    v.sort();
    assert!(v[10_000].abs_diff(MS * 150) < MS * 2, "median {:?}", v[10_000]);
    let sd = (v.iter().map(|d| (d.as_secs_f64() - 0.150).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    assert!((sd - 0.050).abs() < 0.002, "σ {sd}");
}
